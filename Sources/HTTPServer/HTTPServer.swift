import CMicroHTTPD
import CMicroHTTPDShim
import Dispatch
public import Foundation
import Glibc
import Synchronization

/// An HTTP/1.1 server over libmicrohttpd, one thread per connection.
///
/// Each request's head goes to `admit`, which answers at once or admits the request; an admitted
/// body is streamed to a temporary file (never held whole in memory) and `handle` runs with that
/// file, at most `maxInFlight` at a time. A watchdog closes connections whose headers take longer
/// than `headerDeadline` or whose body arrives slower than `minBodyRate`.
public final class HTTPServer: Sendable {
    private struct Running: @unchecked Sendable {
        /// The `mp_mhd_server` owning the daemon; only started and stopped under `running`'s lock.
        var server: OpaquePointer
        var watchdog: Watchdog
    }

    private let core: ServerCore
    private let running = Mutex<Running?>(nil)
    private let started = Atomic(false)
    private let boundPort = Atomic(0)

    /// A server that does not listen until `start`; `log` receives one entry per request (or per
    /// connection closed before its request line), from libmicrohttpd's threads.
    public init(configuration: HTTPServerConfiguration,
                admit: @escaping @Sendable (HTTPRequestHead) -> HTTPAdmission,
                handle: @escaping @Sendable (HTTPRequestHead, _ body: URL) async -> HTTPResponse,
                log: @escaping @Sendable (HTTPAccessEntry) -> Void) {
        core = ServerCore(configuration: configuration, admit: admit, handle: handle, log: log)
    }

    /// The port listened on (the chosen one when the configuration asked for 0); 0 before `start`.
    public var port: Int { boundPort.load(ordering: .acquiring) }

    /// Admitted requests now being read, handled or answered.
    public var inFlight: Int { core.inFlight.withLock { $0 } }

    /// Starts listening; throws when the address is invalid or cannot be listened on.
    public func start() throws {
        let configuration = core.configuration
        guard (0...65535).contains(configuration.port) else {
            throw HTTPServerError.invalidAddress("port \(configuration.port) is outside 0…65535; use 0 for any free port")
        }
        guard started.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            throw HTTPServerError.alreadyStarted()
        }
        var ipv4 = sockaddr_in()
        var ipv6 = sockaddr_in6()
        var flags = MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_INTERNAL_POLLING_THREAD.rawValue
            | MHD_USE_ITC.rawValue | MHD_USE_ERROR_LOG.rawValue
        let isIPv4 = inet_pton(AF_INET, configuration.host, &ipv4.sin_addr) == 1
        if isIPv4 {
            ipv4.sin_family = sa_family_t(AF_INET)
            ipv4.sin_port = in_port_t(configuration.port).bigEndian
        } else if inet_pton(AF_INET6, configuration.host, &ipv6.sin6_addr) == 1 {
            ipv6.sin6_family = sa_family_t(AF_INET6)
            ipv6.sin6_port = in_port_t(configuration.port).bigEndian
            flags |= MHD_USE_IPv6.rawValue
        } else {
            started.store(false, ordering: .releasing)
            throw HTTPServerError.invalidAddress("host \"\(configuration.host)\" is not an IPv4 or IPv6 address literal; use e.g. 127.0.0.1, 0.0.0.0 or ::1")
        }
        core.daemonMessages.withLock { $0.removeAll() }
        let context = Unmanaged.passUnretained(core).toOpaque()
        let server: OpaquePointer? = isIPv4
            ? withUnsafePointer(to: &ipv4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Self.startDaemon(flags, $0, context, configuration) } }
            : withUnsafePointer(to: &ipv6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Self.startDaemon(flags, $0, context, configuration) } }
        guard let server else {
            started.store(false, ordering: .releasing)
            let messages = core.daemonMessages.withLock { $0 }.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            let cause = messages.isEmpty ? "libmicrohttpd gave no reason" : messages.joined(separator: "; ")
            throw HTTPServerError.listen("cannot listen on \(configuration.host):\(configuration.port): \(cause); choose a free port (0 picks one) or stop the program holding it")
        }
        boundPort.store(Int(mp_mhd_bound_port(mp_mhd_daemon(server))), ordering: .releasing)
        let watchdog = Watchdog(core: core)
        running.withLock { $0 = Running(server: server, watchdog: watchdog) }
    }

    private static func startDaemon(_ flags: UInt32, _ address: UnsafePointer<sockaddr>, _ context: UnsafeMutableRawPointer,
                                    _ configuration: HTTPServerConfiguration) -> OpaquePointer? {
        mp_mhd_start(
            flags, address,
            { context, connection, url, method, _, data, size, requestContext in
                ServerCore.from(context).access(connection, url: url, method: method, data: data, size: size, context: requestContext)
            },
            { context, connection, requestContext, code in
                ServerCore.from(context).completed(connection, context: requestContext, code: code)
            },
            { context, connection, _, code in
                let core = ServerCore.from(context)
                if code == .CONNECTION_NOTIFY_STARTED { core.connectionStarted(connection) } else { core.connectionClosed(connection) }
            },
            { context, uri, connection in
                ServerCore.from(context).requestLine(uri, connection)
            },
            { context, message in
                // Kept for the start error only; a library prints nothing.
                guard let message else { return }
                ServerCore.from(context).daemonMessages.withLock { messages in
                    messages.append(String(cString: message))
                    if messages.count > 8 { messages.removeFirst() }
                }
            },
            context, UInt32(clamping: configuration.idleTimeout), UInt32(clamping: configuration.maxConnections))
    }

    /// Graceful stop: stop accepting (MHD_quiesce_daemon), let admitted requests finish (bounded by
    /// `timeout` seconds), then MHD_stop_daemon. Requests on open connections that arrive meanwhile
    /// get 503; handlers still running after `timeout` are cancelled and their requests answered 503.
    public func shutdown(timeout: Double) async {
        guard let current = running.withLock({ $0 }) else { return }
        core.stopping.store(true, ordering: .releasing)
        let listener = MHD_quiesce_daemon(mp_mhd_daemon(current.server))
        // The daemon no longer accepts; closing the socket makes new connections fail at once
        // instead of waiting in the kernel's backlog.
        if listener >= 0 { close(listener) }
        await waitForIdle(upTo: .milliseconds(Int(max(0, timeout) * 1000)))
        if inFlight > 0 {
            core.abandonHandlers.store(true, ordering: .releasing)
            // A moment for the abandoned requests' 503s to go out before the sockets close.
            await waitForIdle(upTo: .seconds(1))
        }
        // MHD_stop_daemon joins the connection threads: wait for it on a thread of its own.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread { [self] in
                stop()
                continuation.resume()
            }.start()
        }
    }

    private func waitForIdle(upTo duration: Duration) async {
        let deadline = ContinuousClock.now + duration
        while inFlight > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func stop() {
        running.withLock { current in
            guard let running = current else { return }
            current = nil
            core.abandonHandlers.store(true, ordering: .releasing)
            mp_mhd_stop(running.server)
            running.watchdog.end()
        }
    }

    deinit {
        stop()
    }
}

/// The thread that enforces the header deadline and the minimum body rate about four times a second.
private final class Watchdog: Sendable {
    private let stopped = Atomic(false)
    private let exited = DispatchSemaphore(value: 0)

    init(core: ServerCore) {
        Thread { [self] in
            while !stopped.load(ordering: .acquiring) {
                usleep(250_000)
                core.sweep()
            }
            exited.signal()
        }.start()
    }

    func end() {
        stopped.store(true, ordering: .releasing)
        exited.wait()
    }
}
