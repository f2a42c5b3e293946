"""The part of a fault rule the fakes share: which action a matching rule gives a request.

A plain rule hands out its actions in order, one per matching request, until none is left. A rule
with "probability", "seed" and "repeat" fires on a seeded random share of the matching requests;
with "repeat" its actions cycle forever, so a few lines describe a whole run's steady faults.
"""
import random


def probabilistic(probability: float, seed: int, repeat: bool) -> dict:
    """The keys a probabilistic rule carries besides its method, path and actions."""
    return {"probability": float(probability), "seed": int(seed), "repeat": bool(repeat), "fired": 0,
            "draws": random.Random(int(seed))}


def next_action(rule: dict) -> dict | None:
    """The action `rule` (which matches the request and has actions left) gives this request, or
    None when its draw says not this time (the next matching rule may still fire)."""
    if "draws" not in rule:
        return rule["actions"].pop(0)
    if rule["draws"].random() >= rule["probability"]:
        return None
    rule["fired"] += 1
    if not rule["repeat"]:
        return rule["actions"].pop(0)
    return rule["actions"][(rule["fired"] - 1) % len(rule["actions"])]
