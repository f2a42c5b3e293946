import Foundation
import HTTPTransport
public import MediaPipeline

/// `Tests/Fakes/fault_proxy.py` in front of one local server: raw TCP forwarded, with resets,
/// stalls, scripted answers, latency and drip applied to the requests a test names.
public final class FaultProxy: Sendable {
    public let server: LocalServer
    /// What clients talk to: `http://127.0.0.1:<port>`, or `https://…` with `tls`.
    public let endpoint: String
    private let controlBase: String
    private let client = CurlClient()

    /// Forwards to the host and port of `upstream` (a server's base URL). With `tls`, the proxy
    /// serves TLS with a certificate made at its start, which nothing trusts.
    public init(upstream: String, tls: Bool = false) async throws {
        guard let url = URL(string: upstream), let host = url.host, let port = url.port else {
            throw TestFiles.FixtureError(description: "fault proxy: no host and port in \(upstream)")
        }
        server = try await LocalServer(script: "fault_proxy.py", arguments: ["--upstream", "\(host):\(port)"] + (tls ? ["--tls-self-signed"] : []))
        endpoint = server.base
        controlBase = server.readyValue("control") ?? ""
        guard !endpoint.isEmpty, !controlBase.isEmpty else {
            throw TestFiles.FixtureError(description: "fault proxy: unexpected READY line \(server.ready)")
        }
    }

    /// Appends actions to the script; each is taken by the next request whose request line its
    /// `match` regex finds (any request without one). See Tests/Fakes/README.md.
    public func script(_ actions: [JSONValue]) async throws {
        let response = try await client.send(HTTPRequest(method: "POST", url: controlBase + "/faults",
                                                         headers: [("Content-Type", "application/json")],
                                                         body: [.bytes(Data(JSONValue.object([("actions", .array(actions))]).compactText.utf8))]))
        guard response.status == 200 else {
            throw TestFiles.FixtureError(description: "fault proxy refused the script: \(String(decoding: response.body, as: UTF8.self))")
        }
    }

    /// The actions no request has taken yet.
    public func pending() async throws -> [JSONValue] {
        try await array("/faults")
    }

    /// One entry per connection: `requests` (request lines), `faults` (actions taken, with the
    /// index of the request that took each), `bytes_up`, `bytes_down`, `dropped`, `upstream`
    /// (whether it was ever connected), `end` and `detail`.
    ///
    /// Waits (up to `timeout` s) until no connection is still open, so entries are final: the
    /// client has exited by then, and the proxy's threads only need a moment to notice.
    public func log(timeout: Double = 20) async throws -> [JSONValue] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let entries = try await array("/log")
            if !entries.contains(where: { $0["end"] == "open" }) || Date() >= deadline { return entries }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func array(_ path: String) async throws -> [JSONValue] {
        let response = try await client.send(HTTPRequest(method: "GET", url: controlBase + path))
        if case let .array(items) = try JSONValue.parse(response.body) { return items }
        return []
    }
}
