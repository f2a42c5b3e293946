import CMicroHTTPD
import CMicroHTTPDShim
import Dispatch
import Foundation
import Glibc
import Synchronization

/// What the watchdog knows of one open connection, keyed by libmicrohttpd's connection pointer.
struct TrackedConnection {
    enum Phase {
        /// Waiting for a complete request head since this instant (accept, or the previous request's end).
        case headers(since: ContinuousClock.Instant)
        /// Reading a body that started at this instant.
        case body(since: ContinuousClock.Instant, bytes: Int64)
        /// Handling or answering: no deadline but libmicrohttpd's idle timeout.
        case busy
    }

    /// The socket; only touched while this entry is registered, so a reused descriptor is never hit.
    var descriptor: Int32
    var remoteAddress: String
    var opened: ContinuousClock.Instant
    var phase: Phase
    /// Set when the watchdog closed the connection; taken by whoever logs the end.
    var note: String?
}

/// One request's state, owned by its connection thread (libmicrohttpd calls every callback of a
/// connection on that connection's thread); it lives behind `*con_cls` from the request line to the
/// completed notification.
final class RequestState {
    let rawPath: String
    let connectionKey: UInt
    let remoteAddress: String
    let begun = ContinuousClock.now
    var head: HTTPRequestHead?
    var holdsSlot = false
    var upload: UploadFile?
    var bodyLimit: Int64 = 0
    var bodyStart = ContinuousClock.now
    var bytesIn: Int64 = 0
    /// An answer decided while reading the body (over the limit, disk error), sent once it is read.
    var deferred: HTTPResponse?
    var answered = false
    var status = 0
    var bytesOut = 0
    var note: String?

    init(rawPath: String, connectionKey: UInt, remoteAddress: String) {
        self.rawPath = rawPath
        self.connectionKey = connectionKey
        self.remoteAddress = remoteAddress
    }
}

/// The state every libmicrohttpd callback reaches through its context pointer.
final class ServerCore: Sendable {
    /// Body bytes read and dropped after a streamed body passes its limit, so a modest overrun still
    /// gets its 413 (libmicrohttpd answers only once the body is read); past this the connection closes.
    static let discardAllowance: Int64 = 1 << 20

    let configuration: HTTPServerConfiguration
    let admit: @Sendable (HTTPRequestHead) -> HTTPAdmission
    let handle: @Sendable (HTTPRequestHead, URL) async -> HTTPResponse
    let log: @Sendable (HTTPAccessEntry) -> Void

    let inFlight = Mutex(0)
    let connections = Mutex<[UInt: TrackedConnection]>([:])
    /// Set by shutdown: requests arriving on open connections get 503.
    let stopping = Atomic(false)
    /// Set when shutdown's wait ran out: handlers still running are no longer waited for.
    let abandonHandlers = Atomic(false)
    /// The daemon's last messages, for the error when it cannot start.
    let daemonMessages = Mutex<[String]>([])

    init(configuration: HTTPServerConfiguration, admit: @escaping @Sendable (HTTPRequestHead) -> HTTPAdmission,
         handle: @escaping @Sendable (HTTPRequestHead, URL) async -> HTTPResponse,
         log: @escaping @Sendable (HTTPAccessEntry) -> Void) {
        self.configuration = configuration
        self.admit = admit
        self.handle = handle
        self.log = log
    }

    static func from(_ context: UnsafeMutableRawPointer?) -> ServerCore {
        Unmanaged<ServerCore>.fromOpaque(context!).takeUnretainedValue()
    }

    static func key(_ connection: OpaquePointer?) -> UInt {
        UInt(bitPattern: Int(bitPattern: connection))
    }

    // MARK: Connections

    func connectionStarted(_ connection: OpaquePointer?) {
        let entry = TrackedConnection(descriptor: mp_mhd_connection_fd(connection),
                                      remoteAddress: Self.remoteAddress(connection), opened: .now,
                                      phase: .headers(since: .now))
        connections.withLock { $0[Self.key(connection)] = entry }
    }

    func connectionClosed(_ connection: OpaquePointer?) {
        guard let entry = connections.withLock({ $0.removeValue(forKey: Self.key(connection)) }), let note = entry.note else { return }
        // Closed by the watchdog before any request line: no request notification will log it.
        log(HTTPAccessEntry(time: Date(), method: "-", rawPath: "-", status: 408, bytesIn: 0, bytesOut: 0,
                            milliseconds: milliseconds(since: entry.opened), remoteAddress: entry.remoteAddress, note: note))
    }

    func setPhase(_ key: UInt, _ phase: TrackedConnection.Phase) {
        connections.withLock { $0[key]?.phase = phase }
    }

    /// Closes connections past the header deadline or under the minimum body rate.
    func sweep() {
        let now = ContinuousClock.now
        let configuration = configuration
        connections.withLock { entries in
            for (key, entry) in entries where entry.note == nil && entry.descriptor >= 0 {
                var note: String?
                switch entry.phase {
                case .headers(let since):
                    if seconds(now - since) > configuration.headerDeadline { note = "header deadline" }
                case .body(let since, let bytes):
                    let elapsed = seconds(now - since)
                    if elapsed > configuration.bodyGrace, Double(bytes) / elapsed < configuration.minBodyRate { note = "body too slow" }
                case .busy:
                    break
                }
                guard let note else { continue }
                entries[key]?.note = note
                // The entry is registered, so libmicrohttpd has not closed this descriptor yet (it
                // unregisters under this lock first); the connection thread sees the shutdown and ends.
                Glibc.shutdown(entry.descriptor, Int32(SHUT_RDWR))
            }
        }
    }

    // MARK: Requests

    func requestLine(_ uri: UnsafePointer<CChar>?, _ connection: OpaquePointer?) -> UnsafeMutableRawPointer {
        let key = Self.key(connection)
        let address = connections.withLock { $0[key]?.remoteAddress } ?? Self.remoteAddress(connection)
        let state = RequestState(rawPath: uri.map { String(cString: $0) } ?? "", connectionKey: key, remoteAddress: address)
        return Unmanaged.passRetained(state).toOpaque()
    }

    func access(_ connection: OpaquePointer?, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?,
                data: UnsafePointer<CChar>?, size: UnsafeMutablePointer<Int>?,
                context: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> MHD_Result {
        guard let context, let size else { return .NO }
        let state: RequestState
        if let pointer = context.pointee {
            state = Unmanaged<RequestState>.fromOpaque(pointer).takeUnretainedValue()
        } else {
            state = RequestState(rawPath: url.map { String(cString: $0) } ?? "", connectionKey: Self.key(connection),
                                 remoteAddress: Self.remoteAddress(connection))
            context.pointee = Unmanaged.passRetained(state).toOpaque()
        }
        if state.answered {
            size.pointee = 0
            return .YES
        }
        guard let head = state.head else {
            return begin(connection, state, path: url.map { String(cString: $0) } ?? "",
                         method: method.map { String(cString: $0) } ?? "")
        }
        if size.pointee > 0 {
            let count = size.pointee
            size.pointee = 0
            return receive(state, data, count: count)
        }
        return finish(connection, state, head)
    }

    /// Headers are complete: admit, refuse, or start storing the body.
    private func begin(_ connection: OpaquePointer?, _ state: RequestState, path: String, method: String) -> MHD_Result {
        let head = makeHead(connection, state, path: path, method: method)
        state.head = head
        state.bodyStart = .now
        setPhase(state.connectionKey, .body(since: state.bodyStart, bytes: 0))
        let response: HTTPResponse
        if head.headers["content-length"] != nil, head.contentLength == nil {
            response = .problem(status: 400, detail: "Content-Length must be a decimal byte count.")
        } else if stopping.load(ordering: .relaxed) {
            response = .problem(status: 503, detail: "The server is shutting down.", headers: [("Connection", "close")])
        } else {
            switch admit(head) {
            case .respond(let answer):
                response = answer
            case .handle(let limit):
                if let length = head.contentLength, length > limit {
                    response = .problem(status: 413, detail: "The body is \(length) bytes; this endpoint takes at most \(limit).")
                } else if !acquireSlot() {
                    response = .problem(status: 503, detail: "Too many requests are being handled; try again shortly.",
                                        headers: [("Retry-After", String(configuration.retryAfterSeconds))])
                } else {
                    state.holdsSlot = true
                    state.bodyLimit = limit
                    do {
                        state.upload = try UploadFile(in: configuration.temporaryDirectory)
                        return .YES
                    } catch {
                        response = .problem(status: 500, detail: "The request body cannot be stored: \(error)")
                    }
                }
            }
        }
        return queue(connection, state, response)
    }

    /// One chunk of body: stored unless over the limit; a body under the minimum rate ends the connection.
    private func receive(_ state: RequestState, _ data: UnsafePointer<CChar>?, count: Int) -> MHD_Result {
        state.bytesIn += Int64(count)
        let now = ContinuousClock.now
        connections.withLock { entries in
            if case .body(let since, _) = entries[state.connectionKey]?.phase {
                entries[state.connectionKey]?.phase = .body(since: since, bytes: state.bytesIn)
            }
        }
        if state.deferred == nil {
            if state.bytesIn > state.bodyLimit {
                state.upload?.remove()
                state.upload = nil
                state.deferred = .problem(status: 413, detail: "The body is over \(state.bodyLimit) bytes, the most this endpoint takes.")
            } else if let upload = state.upload, let data {
                do {
                    try upload.append(data, count: count)
                } catch {
                    upload.remove()
                    state.upload = nil
                    state.deferred = .problem(status: 500, detail: "The request body cannot be stored: \(error)")
                }
            }
        }
        let elapsed = seconds(now - state.bodyStart)
        if elapsed > configuration.bodyGrace, Double(state.bytesIn) / elapsed < configuration.minBodyRate {
            state.note = "body too slow"
            state.status = 408
            return .NO
        }
        if state.deferred != nil, state.bytesIn > state.bodyLimit + Self.discardAllowance {
            state.note = "body over limit"
            state.status = 413
            return .NO
        }
        return .YES
    }

    /// The body is complete: run the handler (this connection's thread waits) and queue its answer.
    private func finish(_ connection: OpaquePointer?, _ state: RequestState, _ head: HTTPRequestHead) -> MHD_Result {
        setPhase(state.connectionKey, .busy)
        if let deferred = state.deferred { return queue(connection, state, deferred) }
        guard let upload = state.upload else {
            return queue(connection, state, .problem(status: 500, detail: "The request body was not stored."))
        }
        do {
            try upload.finish()
        } catch {
            return queue(connection, state, .problem(status: 500, detail: "The request body cannot be stored: \(error)"))
        }
        return queue(connection, state, runHandler(head, body: upload.url))
    }

    /// Runs the async handler in a task while this libmicrohttpd thread waits, so Swift's
    /// cooperative threads are never blocked.
    private func runHandler(_ head: HTTPRequestHead, body: URL) -> HTTPResponse {
        let box = ResponseBox()
        let done = DispatchSemaphore(value: 0)
        let handle = handle
        let task = Task {
            box.set(await handle(head, body))
            done.signal()
        }
        while done.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
            if abandonHandlers.load(ordering: .relaxed) {
                // Its body file goes when this request ends; the handler is told to stop.
                task.cancel()
                return .problem(status: 503, detail: "The server shut down before this request was handled.",
                                headers: [("Connection", "close")])
            }
        }
        return box.get() ?? .problem(status: 500, detail: "The handler gave no response.")
    }

    private func queue(_ connection: OpaquePointer?, _ state: RequestState, _ response: HTTPResponse) -> MHD_Result {
        setPhase(state.connectionKey, .busy)
        let made = response.body.withUnsafeBytes { raw in
            MHD_create_response_from_buffer(raw.count, UnsafeMutableRawPointer(mutating: raw.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let made else { return .NO }
        defer { MHD_destroy_response(made) }
        for (name, value) in response.headers {
            // libmicrohttpd writes the framing headers itself.
            let lowered = name.lowercased()
            if lowered == "content-length" || lowered == "transfer-encoding" { continue }
            _ = MHD_add_response_header(made, name, value)
        }
        let result = MHD_queue_response(connection, UInt32(clamping: response.status), made)
        if result == .YES {
            state.answered = true
            state.status = response.status
            state.bytesOut = response.body.count
        }
        return result
    }

    /// The request ended, however: remove its file, free its slot, log it.
    func completed(_ connection: OpaquePointer?, context: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                   code: MHD_RequestTerminationCode) {
        guard let context, let pointer = context.pointee else { return }
        context.pointee = nil
        let state = Unmanaged<RequestState>.fromOpaque(pointer).takeRetainedValue()
        state.upload?.remove()
        state.upload = nil
        if state.holdsSlot {
            state.holdsSlot = false
            inFlight.withLock { $0 -= 1 }
        }
        let watchdogNote = connections.withLock { entries -> String? in
            let note = entries[state.connectionKey]?.note
            entries[state.connectionKey]?.note = nil
            entries[state.connectionKey]?.phase = .headers(since: .now)
            return note
        }
        var note = watchdogNote ?? state.note
        if note == nil {
            switch code {
            case .REQUEST_TERMINATED_COMPLETED_OK: note = nil
            case .REQUEST_TERMINATED_TIMEOUT_REACHED: note = "idle timeout"
            case .REQUEST_TERMINATED_CLIENT_ABORT, .REQUEST_TERMINATED_READ_ERROR: note = "client went away"
            case .REQUEST_TERMINATED_DAEMON_SHUTDOWN: note = "server shut down"
            default: note = "connection error"
            }
        }
        let status = state.answered ? state.status : (watchdogNote != nil ? 408 : state.status)
        log(HTTPAccessEntry(time: Date(), method: state.head?.method ?? "-", rawPath: state.rawPath, status: status,
                            bytesIn: state.bytesIn, bytesOut: state.answered ? state.bytesOut : 0,
                            milliseconds: milliseconds(since: state.begun), remoteAddress: state.remoteAddress, note: note))
    }

    private func acquireSlot() -> Bool {
        inFlight.withLock { count in
            guard count < configuration.maxInFlight else { return false }
            count += 1
            return true
        }
    }

    // MARK: Request head

    private func makeHead(_ connection: OpaquePointer?, _ state: RequestState, path: String, method: String) -> HTTPRequestHead {
        var headers: [String: String] = [:]
        for (name, value) in Self.values(connection, kind: .HEADER_KIND) {
            let lowered = name.lowercased()
            headers[lowered] = headers[lowered].map { "\($0), \(value)" } ?? value
        }
        var query: [String: String] = [:]
        for (name, value) in Self.values(connection, kind: .GET_ARGUMENT_KIND) { query[name] = value }
        return HTTPRequestHead(method: method, path: path, rawPath: state.rawPath, query: query, headers: headers,
                               contentLength: headers["content-length"].flatMap(HTTPRequestHead.parseContentLength),
                               remoteAddress: state.remoteAddress)
    }

    private final class Pairs {
        var items: [(String, String)] = []
    }

    private static func values(_ connection: OpaquePointer?, kind: MHD_ValueKind) -> [(String, String)] {
        let pairs = Pairs()
        withExtendedLifetime(pairs) {
            _ = MHD_get_connection_values(connection, kind, { context, _, key, value in
                guard let context, let key else { return .YES }
                let pairs = Unmanaged<Pairs>.fromOpaque(context).takeUnretainedValue()
                pairs.items.append((String(cString: key), value.map { String(cString: $0) } ?? ""))
                return .YES
            }, Unmanaged.passUnretained(pairs).toOpaque())
        }
        return pairs.items
    }

    private static func remoteAddress(_ connection: OpaquePointer?) -> String {
        guard let address = mp_mhd_connection_address(connection) else { return "" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ipv4 in
                var bytes = ipv4.pointee.sin_addr
                _ = inet_ntop(AF_INET, &bytes, &text, socklen_t(text.count))
            }
        case AF_INET6:
            address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { ipv6 in
                var bytes = ipv6.pointee.sin6_addr
                _ = inet_ntop(AF_INET6, &bytes, &text, socklen_t(text.count))
            }
        default:
            return ""
        }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// The handler's answer, passed from its task to the waiting connection thread.
private final class ResponseBox: Sendable {
    private let value = Mutex<HTTPResponse?>(nil)
    func set(_ response: HTTPResponse) { value.withLock { $0 = response } }
    func get() -> HTTPResponse? { value.withLock { $0 } }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func milliseconds(since start: ContinuousClock.Instant) -> Double {
    seconds(ContinuousClock.now - start) * 1000
}
