import Foundation
import MediaPipeline

/// `media-pipeline notify flush|status`: delivers or shows the notifications waiting in the journal's outbox.
struct NotifyCommand {
    static let spec = CommandSpec(
        name: "notify", usage: "notify flush|status [--pipeline FILE] [--journal FILE|URL] [--timeout DURATION]",
        abstract: "Deliver (flush) or count (status) the notifications waiting in the journal's outbox.",
        options: [
            .init(name: "pipeline", value: "FILE", help: "The pipeline whose notify steps send them (default: pipeline.json)."),
            .init(name: "journal", value: "FILE|URL", help: "The journal holding the outbox (default: .media-pipeline/journal.db, or MEDIA_PIPELINE_JOURNAL)."),
            .init(name: "timeout", value: "DURATION", help: "flush: give up after this long, e.g. 30s or 5min (default: the steps' flushTimeout)."),
        ],
        discussion: """
            A run whose receiver was down exits 5 and leaves its events in the outbox; the next run
            sends them first, or 'notify flush' does it without running anything else. Nothing is uploaded.
            Exit codes: 0 every event delivered, 2 usage or pipeline error, 3 the journal cannot be used,
            5 events still pending, refused by the receiver, or expired.
            """)

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() async -> Int32 {
        func usage(_ message: String) -> Int32 {
            console.err("error: \(message)")
            return 2
        }
        guard let action = arguments.positional.first, ["flush", "status"].contains(action), arguments.positional.count == 1 else {
            return usage("say 'notify flush' or 'notify status'; see 'media-pipeline notify --help'")
        }
        var timeout: Double?
        if let text = arguments.value("timeout") {
            guard let seconds = Quantity.seconds(text) else { return usage("--timeout takes a duration such as 30s or 5min") }
            timeout = seconds
        }
        guard let pipeline = MediaPipelineCLI.loadPipeline(arguments.value("pipeline") ?? "pipeline.json", environment: environment,
                                                           assumeConfigured: false, console: console) else { return 2 }
        let steps = NotifyDispatcher.steps(of: pipeline)
        guard !steps.isEmpty else { return usage("the pipeline has no notify step, so nothing would send the events") }
        let journal: any Journal
        switch await JournalChoice.open(arguments.value("journal"), environment: environment, lease: pipeline.limits.lease) {
        case let .success(opened): journal = opened
        case let .failure(problem):
            console.err("error: \(problem.message)")
            return problem.usage ? 2 : 3
        }
        let code = await perform(action, steps: steps, journal: journal, timeout: timeout)
        await journal.close()
        return code
    }

    private func perform(_ action: String, steps: [NotifyDispatcher.Step], journal: any Journal, timeout: Double?) async -> Int32 {
        guard let outbox = journal as? any Outbox else {
            console.err("error: this journal keeps no outbox")
            return 3
        }
        if action == "status" {
            for step in steps {
                do {
                    let counts = try await outbox.counts(step: step.name)
                    console.out("\(step.name): " + OutboxEvent.State.allCases.map { "\(counts[$0]) \($0.rawValue)" }.joined(separator: ", "))
                } catch {
                    console.err("error: cannot read the outbox: \(error)")
                    return 3
                }
            }
            return 0
        }
        let dispatcher = NotifyDispatcher(steps: steps, outbox: outbox, run: RunIdentity(id: "flush"),
                                          logger: ConsoleLogger(console: console))
        dispatcher.finish(within: timeout)
        let tally = await dispatcher.deliver()
        console.err(Self.describe(tally))
        return tally.incomplete ? 5 : 0
    }

    /// One line: what was delivered, and what is left or lost.
    static func describe(_ tally: NotifyTally) -> String {
        var line = "notifications: \(tally.delivered) delivered, \(tally.pending) pending"
        if tally.refused > 0 { line += ", \(tally.refused) refused" }
        if tally.expired > 0 { line += ", \(tally.expired) expired" }
        if tally.pending > 0 {
            line += tally.volatile
                ? " (this run has no journal, so they are lost; run with a journal to keep them)"
                : " (they stay in the outbox: the next run or 'media-pipeline notify flush' sends them)"
        }
        return line
    }
}
