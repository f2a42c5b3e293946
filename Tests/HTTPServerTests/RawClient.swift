import Foundation
import Glibc
import Synchronization

/// A blocking TCP client that writes exactly the bytes a test chooses (slow, partial, oversized),
/// so the server's parsing and deadlines meet what a hostile client really sends.
/// Use it from a thread of its own (`onThread`), never on Swift's cooperative threads.
final class RawClient {
    private let descriptor: Int32

    /// Connects to 127.0.0.1:`port`; nil with `errno` set when the connection is refused.
    init?(port: Int) {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let saved = errno
            close(socketDescriptor)
            errno = saved
            return nil
        }
        descriptor = socketDescriptor
    }

    deinit { close(descriptor) }

    /// Writes all bytes; false once the server has closed the connection.
    @discardableResult
    func send(_ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if written < 0 { if errno == EINTR { continue }; return false }
                offset += written
            }
            return true
        }
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Data(text.utf8)) }

    /// Reads until the server closes the connection (or an error, or `timeout` seconds).
    func readToEnd(timeout: Double = 15) -> Data {
        var collected = Data()
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 100)
            if ready == 0 { continue }
            if ready < 0 { if errno == EINTR { continue }; break }
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            collected.append(contentsOf: buffer[0..<count])
        }
        return collected
    }

    /// Reads one response whose length is given by Content-Length, leaving the connection open.
    func readResponse(timeout: Double = 15) -> RawResponse? {
        var collected = Data()
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            if let response = RawResponse(collected), let length = response.headers["content-length"].flatMap(Int.init),
               response.body.count >= length {
                return response
            }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 100)
            if ready == 0 { continue }
            if ready < 0 { if errno == EINTR { continue }; return nil }
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { return nil }
            collected.append(contentsOf: buffer[0..<count])
        }
        return nil
    }

    /// True when the server has closed the connection (EOF or reset) within `timeout` seconds;
    /// response bytes that arrive first are skipped.
    func isClosed(within timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 50)
            if ready <= 0 { continue }
            let count = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count == 0 { return true }
            if count < 0, errno != EAGAIN, errno != EINTR { return true }
        }
        return false
    }

    /// Closes at once with a reset, as a client that crashed or lost its network would.
    func abort() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
    }
}

/// A response as read off the wire: just enough parsing for assertions.
struct RawResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: Data

    init?(_ data: Data) {
        guard let split = data.firstRange(of: Data("\r\n\r\n".utf8)) else { return nil }
        let head = String(decoding: data[data.startIndex..<split.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        self.status = status
        headers = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        body = data[split.upperBound...]
    }

    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
}

/// Runs blocking socket work on a thread of its own, leaving Swift's cooperative threads free.
func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}

/// Sends one whole request on a new connection and reads the answer (the request says `Connection: close`).
func exchange(port: Int, _ request: String) async -> RawResponse? {
    await onThread {
        guard let client = RawClient(port: port) else { return nil }
        client.send(request)
        return RawResponse(client.readToEnd())
    }
}

/// Access entries and handler calls the server reported, for assertions.
final class Recorder: Sendable {
    private let entries = Mutex<[HTTPAccessEntryRecord]>([])
    private let heads = Mutex<[(head: HTTPRequestHeadRecord, body: Data, mode: Int)]>([])

    struct HTTPAccessEntryRecord: Sendable {
        var method: String, rawPath: String, status: Int, bytesIn: Int64, note: String?, text: String
    }

    struct HTTPRequestHeadRecord: Sendable {
        var path: String, rawPath: String, query: [String: String], headers: [String: String], contentLength: Int64?, bodyPath: String
    }

    func logged(_ entry: HTTPAccessEntryRecord) { entries.withLock { $0.append(entry) } }
    var log: [HTTPAccessEntryRecord] { entries.withLock { $0 } }
    func handled(_ head: HTTPRequestHeadRecord, body: Data, mode: Int) { heads.withLock { $0.append((head, body, mode)) } }
    var handledCount: Int { heads.withLock { $0.count } }
    var handledRequests: [(head: HTTPRequestHeadRecord, body: Data, mode: Int)] { heads.withLock { $0 } }
}

/// Lets a test hold handlers until it has seen what it wants.
final class Gate: Sendable {
    private let isOpen = Atomic(false)
    func open() { isOpen.store(true, ordering: .releasing) }
    func wait() async {
        while !isOpen.load(ordering: .acquiring), !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
    }
}
