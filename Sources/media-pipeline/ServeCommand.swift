#if canImport(CMalloc)
import CMalloc
#endif
import Dispatch
import Foundation
import Digests
import HTTPServer
import LocalMedia
import MediaPipeline
import MediaPipelineKit

/// `media-pipeline serve`: the same pipeline over HTTP, one upload per request, for a platform's
/// backend in any language. See docs/serve.md.
struct ServeCommand {
    static let spec = CommandSpec(
        name: "serve", usage: "serve [--listen ADDR] [options]",
        abstract: "Run the pipeline over HTTP for single uploads, direct-upload URLs and live inputs.",
        options: [
            .init(name: "listen", value: "HOST:PORT", help: "Address to listen on (default 127.0.0.1:8787; port 0 picks a free one)."),
            .init(name: "max-in-flight", value: "N", help: "Requests handled at once; more get 503 with Retry-After (default 16)."),
            .init(name: "max-body", value: "SIZE", help: "Largest upload body taken through the server (default 200MB); larger files use direct uploads."),
            .init(name: "url-expiry", value: "SECONDS", help: "How long direct-upload URLs stay valid, 120 to 21600 (Images' window; default 900)."),
            .init(name: "header-deadline", value: "SECONDS", help: "Time a client has to send its request headers, from connecting (default 10)."),
            .init(name: "min-body-rate", value: "BYTES/S", help: "Slowest body accepted after the first 5 seconds (default 10000)."),
            .init(name: "idle-timeout", value: "SECONDS", help: "A connection silent this long is closed (default 30)."),
            .init(name: "unauthenticated", value: nil, help: "Run without MEDIA_PIPELINE_TOKEN; only on a loopback address."),
            .init(name: "quiet", value: nil, help: "No access log."),
        ] + PipelineChoice.options,
        discussion: """
            Every request needs 'Authorization: Bearer <token>' with the token from MEDIA_PIPELINE_TOKEN.
            Routes: POST /v1/assets?purpose=P&filename=F (body: the file), DELETE /v1/assets/{ref},
            POST /v1/direct-uploads, GET|POST /v1/live-inputs, DELETE /v1/live-inputs/{uid}, GET /healthz, GET /metrics.
            The access log (JSON lines on stderr) never holds headers or tokens.
            SIGTERM or SIGINT: stop taking connections, finish the requests in flight, exit 0.
            Exit codes: 0 stopped cleanly, 2 usage or pipeline error, 3 the address cannot be used.
            """)

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() async -> Int32 {
        func usage(_ message: String) -> Int32 {
            console.err("error: \(message)")
            return 2
        }
        var configuration = HTTPServerConfiguration(temporaryDirectory: FileManager.default.temporaryDirectory)
        if let listen = arguments.value("listen") {
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65_535).contains(port) else {
                return usage("--listen takes HOST:PORT, e.g. 127.0.0.1:8787")
            }
            configuration.host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            configuration.port = port
        }
        func number(_ name: String, _ range: ClosedRange<Double>) -> Double?? {
            guard let text = arguments.value(name) else { return .some(nil) }
            guard let value = Double(text), range.contains(value) else { return nil }
            return .some(value)
        }
        guard let inFlight = number("max-in-flight", 1...4096), let expiry = number("url-expiry", 120...21_600),
              let headerDeadline = number("header-deadline", 0.5...600), let bodyRate = number("min-body-rate", 0...1e12),
              let idle = number("idle-timeout", 1...3600) else {
            return usage("a number is out of range; see 'media-pipeline serve --help'")
        }
        if let inFlight { configuration.maxInFlight = Int(inFlight) }
        if let headerDeadline { configuration.headerDeadline = headerDeadline }
        if let bodyRate { configuration.minBodyRate = bodyRate }
        if let idle { configuration.idleTimeout = Int(idle) }
        var maxBody: Int64 = 200_000_000
        if let text = arguments.value("max-body") {
            guard let bytes = Quantity.bytes(text), bytes > 0 else { return usage("--max-body takes a size such as 200MB") }
            maxBody = bytes
        }

        let token = environment["MEDIA_PIPELINE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(configuration.host) || configuration.host.hasPrefix("127.")
        if token == nil {
            guard arguments.flag("unauthenticated") else {
                return usage("set MEDIA_PIPELINE_TOKEN (every request must send it as a bearer token), or pass --unauthenticated on a loopback address")
            }
            guard loopback else { return usage("--unauthenticated is allowed only on a loopback address, not \(configuration.host)") }
        } else if let token, token.count < 16 {
            return usage("MEDIA_PIPELINE_TOKEN is too short: use at least 16 random characters")
        }
        if token != nil, arguments.flag("unauthenticated") { return usage("choose one of MEDIA_PIPELINE_TOKEN and --unauthenticated") }

        guard let pipeline = PipelineChoice(arguments).load(environment: environment, assumeConfigured: false, console: console)?.pipeline else {
            return 2
        }
        DecoderWorkers.setTimeout(pipeline.limits.decodeTimeout)
        let media = MediaService(pipeline: pipeline, environment: environment, logger: ConsoleLogger(console: console))
        let metrics = ServeMetrics()
        let server = Box<HTTPServer>()
        let api = ServeAPI(media: media, metrics: metrics, redactor: console.redactor, tokenDigest: token.map { Digest.sha256Hex($0) },
                           maxBody: maxBody, urlExpiry: expiry ?? 900, inFlight: { server.value?.inFlight ?? 0 })
        let quiet = arguments.flag("quiet")
        let http = HTTPServer(configuration: configuration,
                              admit: { head in
                                  let response = api.admit(head)
                                  if case let .respond(answer) = response { metrics.record(route: ServeAPI.route(head.path), status: answer.status, seconds: 0) }
                                  return response
                              },
                              handle: { head, body in await api.handle(head, body: body) },
                              log: { entry in if !quiet { console.err(Self.logLine(entry)) } })
        server.value = http
        do { try http.start() } catch {
            console.err("error: cannot listen on \(configuration.host):\(configuration.port): \(error)")
            return 3
        }
        let stop = Self.waitForStop()
        console.err("serving on http://\(configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host):\(http.port) (\(configuration.maxInFlight) requests at once\(token == nil ? ", no authentication" : ""))")
        let trimmer = Self.trimWhenQuiet(server: http)
        let signal = await stop.value
        trimmer.cancel()
        console.err("stopping on \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): no new connections; finishing the requests in flight")
        await http.shutdown(timeout: 120)
        await media.finish()
        console.err("stopped")
        return 0
    }

    /// One access-log line: no headers, no tokens, the query kept (it names the file and purpose).
    static func logLine(_ entry: HTTPAccessEntry) -> String {
        var pairs: [(key: String, value: JSONValue)] = [
            ("event", .string("request")), ("time", .string(ISO8601DateFormatter().string(from: entry.time))),
            ("method", .string(entry.method)), ("path", .string(entry.rawPath)), ("status", .int(Int64(entry.status))),
            ("bytesIn", .int(entry.bytesIn)), ("bytesOut", .int(Int64(entry.bytesOut))),
            ("ms", .number((entry.milliseconds * 10).rounded() / 10)), ("remote", .string(entry.remoteAddress)),
        ]
        if let note = entry.note { pairs.append(("note", .string(note))) }
        return JSONValue.object(pairs).compactText
    }

    /// After a busy spell, once nothing is in flight, hands the heap's free pages back to the
    /// system: each connection's thread leaves memory in glibc's arenas that would otherwise stay
    /// counted against the server while it waits for the next burst.
    static func trimWhenQuiet(server: HTTPServer) -> Task<Void, Never> {
        Task.detached {
            var wasBusy = false
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                if server.inFlight > 0 {
                    wasBusy = true
                } else if wasBusy {
                    wasBusy = false
                    #if canImport(CMalloc)
                    malloc_trim(0)
                    #endif
                }
            }
        }
    }

    /// Resolves with the first SIGTERM or SIGINT.
    static func waitForStop() -> Task<Int32, Never> {
        let sources = Box<[any DispatchSourceSignal]>()
        return Task {
            await withCheckedContinuation { continuation in
                let once = Box<Bool>()
                var made: [any DispatchSourceSignal] = []
                // One serial queue for both signals, so the first one alone resumes.
                let queue = DispatchQueue(label: "media-pipeline.serve.signals")
                for number in [SIGTERM, SIGINT] {
                    signal(number, SIG_IGN)
                    let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                    source.setEventHandler {
                        guard once.value == nil else { return }
                        once.value = true
                        continuation.resume(returning: number)
                    }
                    source.resume()
                    made.append(source)
                }
                sources.value = made
            }
        }
    }

    /// A value handed between threads where the hand-over itself orders the accesses (set before
    /// the server starts; written before a semaphore is signalled; read on one serial queue).
    final class Box<T>: @unchecked Sendable { var value: T? }
}
