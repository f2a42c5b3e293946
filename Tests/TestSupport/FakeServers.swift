public import Foundation
public import HTTPTransport
public import MediaPipeline

/// A local server a test starts (a Python fake or the S3 server), stopped by PID when the test ends.
public final class LocalServer: @unchecked Sendable {
    public let process: Process
    /// What the server printed after `READY `.
    public let ready: String
    /// `http(s)://127.0.0.1:<port>`.
    public let base: String
    private let client = CurlClient()

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs `python3 Tests/Fakes/<script> arguments…` and waits (up to `timeout` s) for its `READY …` line.
    public init(script: String, arguments: [String], scheme: String = "http", timeout: Double = 60) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestFiles.repoRoot.appendingPathComponent("Tests/Fakes/\(script)").path] + arguments
        process.standardInput = FileHandle.nullDevice
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        try process.run()
        self.process = process
        // Read the first line on a thread so a silent server cannot hang the test.
        let line = LineBox()
        let thread = Thread {
            var data = Data()
            while !data.contains(0x0A) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                data.append(chunk)
            }
            line.set(String(decoding: data, as: UTF8.self))
        }
        thread.start()
        let deadline = Date().addingTimeInterval(timeout)
        // Waits without holding one of Swift's few cooperative threads (a moto server takes seconds to start).
        while line.get() == nil, Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        let first = line.get()?.split(separator: "\n").first.map(String.init) ?? ""
        guard first.hasPrefix("READY ") else {
            process.terminate()
            throw StartError(description: "\(script) did not start: \(first.isEmpty ? "no READY line within \(Int(timeout)) s" : first)")
        }
        ready = String(first.dropFirst(6))
        if let port = Int(ready) {
            base = "\(scheme)://127.0.0.1:\(port)"
        } else if let data = ready.data(using: .utf8), let json = try? JSONValue.parse(data), case let .string(endpoint)? = json["endpoint"] {
            base = endpoint
        } else {
            base = ""
        }
    }

    deinit { stop() }

    /// Ends the server by PID. The fakes keep nothing worth a graceful stop, and Foundation's
    /// waitUntilExit can hang when called from a task, so the exit is polled briefly.
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<100 where process.isRunning { usleep(10_000) }
    }

    /// A value from a JSON `READY` line.
    public func readyValue(_ key: String) -> String? {
        guard let json = try? JSONValue.parse(Data(ready.utf8)), case let .string(value)? = json[key] else { return nil }
        return value
    }

    /// GET a control endpoint (`/__fake/...`) and parse its JSON.
    public func control(_ path: String) async throws -> JSONValue {
        let response = try await client.send(HTTPRequest(method: "GET", url: base + path))
        return try JSONValue.parse(response.body)
    }

    /// POST JSON to a control endpoint.
    @discardableResult
    public func post(_ path: String, _ body: JSONValue = .object([])) async throws -> HTTPResponse {
        try await client.send(HTTPRequest(method: "POST", url: base + path, headers: [("Content-Type", "application/json")],
                                          body: [.bytes(Data(body.compactText.utf8))]))
    }

    /// Scripts faults: each rule's actions are used up by matching requests in order.
    public func faults(_ rules: [JSONValue]) async throws {
        try await post("/__fake/faults", .object([("rules", .array(rules))]))
    }

    /// The request log.
    public func log() async throws -> [JSONValue] {
        if case let .array(items) = try await control("/__fake/log") { return items }
        return []
    }

    private final class LineBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: String?
        func set(_ v: String) { lock.lock(); value = v; lock.unlock() }
        func get() -> String? { lock.lock(); defer { lock.unlock() }; return value }
    }
}

/// The Cloudflare API fake (Images, Stream, live inputs, token verify).
public final class CloudflareFake: Sendable {
    /// A canary: searched for in everything the tool's runs leave behind.
    public static let token = Canaries.make("api")
    public static let account = "0123456789abcdef0123456789abcdef"
    public let server: LocalServer
    /// The token this fake accepts.
    public let token: String

    public init(token: String = CloudflareFake.token, arguments: [String] = [], scheme: String = "http") async throws {
        self.token = token
        server = try await LocalServer(script: "cloudflare_fake.py", arguments: ["--token", token, "--account", Self.account] + arguments,
                                 scheme: scheme)
    }

    /// The variables that point the tool at this fake.
    public var environment: [String: String] {
        ["CLOUDFLARE_API_BASE_URL": server.base + "/client/v4", "CLOUDFLARE_ACCOUNT_ID": Self.account, "CLOUDFLARE_API_TOKEN": token]
    }

    public func state() async throws -> JSONValue { try await server.control("/__fake/state") }
}

/// moto's S3 server behind the R2-rules proxy.
public final class S3Fake: Sendable {
    public let server: LocalServer

    public init(arguments: [String] = []) async throws {
        server = try await LocalServer(script: "s3_server.py", arguments: arguments, timeout: 120)
        for key in ["access_key_id", "secret_access_key"] { server.readyValue(key).map(Canaries.register) }
    }

    public var environment: [String: String] {
        ["CLOUDFLARE_R2_ENDPOINT": server.base, "CLOUDFLARE_R2_BUCKET_NAME": server.readyValue("bucket") ?? "media",
         "CLOUDFLARE_R2_ACCESS_KEY_ID": server.readyValue("access_key_id") ?? "",
         "CLOUDFLARE_R2_SECRET_ACCESS_KEY": server.readyValue("secret_access_key") ?? ""]
    }

    /// Every object in the bucket: key → facts (size, etag, content_type, metadata, sha256).
    public func objects() async throws -> JSONValue { try await server.control("/__fake/objects") }
}

/// A webhook receiver that checks Standard Webhooks signatures with Python's own hmac, dedupes by
/// `webhook-id`, and can be scripted to answer slowly or with chosen statuses.
public final class WebhookReceiver: Sendable {
    /// A secret in the Standard Webhooks form: whsec_ + base64 of 32 bytes.
    /// Random in every test process, and a canary: searched for in everything the tool's runs leave behind.
    public static let secret: String = {
        let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        Canaries.register(key)
        Canaries.register("whsec_" + key)
        return "whsec_" + key
    }()
    public let server: LocalServer

    /// Listens on `port` (0: any free port).
    public init(port: Int = 0, secret: String = WebhookReceiver.secret) async throws {
        server = try await LocalServer(script: "webhook_receiver.py", arguments: ["--secret", secret, "--port", String(port)])
    }

    public var url: String { server.base + "/hooks/media" }

    /// Every delivery seen: id, type, verified, status answered.
    public func deliveries() async throws -> [JSONValue] {
        if case let .array(items)? = try await server.control("/__fake/state")["deliveries"] { return items }
        return []
    }

    /// The events processed, once per id: id → body.
    public func processed() async throws -> [(key: String, value: JSONValue)] {
        if case let .object(pairs)? = try await server.control("/__fake/state")["processed"] { return pairs }
        return []
    }

    /// Answers the next deliveries with `statuses` (then 200), and/or sleeps `delayFirst` s before
    /// answering the first delivery of each id.
    public func script(statuses: [Int] = [], delayFirst: Double = 0) async throws {
        try await server.post("/__fake/script", .object([("statuses", .array(statuses.map { .int($0) })),
                                                         ("delay_first", .number(delayFirst))]))
    }
}

/// A loopback TCP port held by a bound socket that never listens: connections to it are refused,
/// and no other server started meanwhile (by a test running beside this one) can take it.
public final class ReservedPort: @unchecked Sendable {
    public let port: Int
    private var descriptor: Int32

    public init() throws {
        #if os(Linux)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestFiles.FixtureError(description: "socket() failed: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(fd, generic, length) == 0 && getsockname(fd, generic, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestFiles.FixtureError(description: "could not find a free port: \(String(cString: strerror(errno)))")
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Lets go of the port, so a server can be started on it right after.
    public func release() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    deinit { release() }
}

extension TestFiles {
    /// A TCP port nothing listens on right now (for a server about to be started on it).
    public static func freePort() throws -> Int {
        let reserved = try ReservedPort()
        defer { reserved.release() }
        return reserved.port
    }
}
