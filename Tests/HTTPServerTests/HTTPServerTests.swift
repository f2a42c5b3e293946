import Foundation
import Glibc
@testable import HTTPServer
import Testing
import TestSupport

@Suite(.serialized, .timeLimit(.minutes(2)))
struct HTTPServerTests {
    /// Starts a server on 127.0.0.1 with a free port, bodies stored in a fresh folder, and stops it after `body`.
    private func withServer(configure: (inout HTTPServerConfiguration) -> Void = { _ in },
                            admit: @escaping @Sendable (HTTPRequestHead) -> HTTPAdmission = { _ in .handle(bodyLimit: 1 << 20) },
                            handle: @escaping @Sendable (HTTPRequestHead, URL) async -> HTTPResponse = { _, _ in HTTPResponse(status: 200) },
                            _ body: (HTTPServer, URL, Recorder) async throws -> Void) async throws {
        try await TestFiles.withTemporaryDirectory { folder in
            let uploads = folder.appendingPathComponent("uploads")
            try FileManager.default.createDirectory(at: uploads, withIntermediateDirectories: true)
            var configuration = HTTPServerConfiguration(temporaryDirectory: uploads)
            configuration.port = 0
            configure(&configuration)
            let recorder = Recorder()
            let server = HTTPServer(configuration: configuration, admit: admit, handle: { head, file in
                let data = (try? Data(contentsOf: file)) ?? Data()
                let mode = ((try? FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions]) as? Int) ?? -1
                recorder.handled(.init(path: head.path, rawPath: head.rawPath, query: head.query, headers: head.headers,
                                       contentLength: head.contentLength, bodyPath: file.path), body: data, mode: mode)
                return await handle(head, file)
            }, log: { entry in
                recorder.logged(.init(method: entry.method, rawPath: entry.rawPath, status: entry.status, bytesIn: entry.bytesIn,
                                      note: entry.note, text: "\(entry)"))
            })
            try server.start()
            #expect(server.port > 0)
            try await body(server, uploads, recorder)
            await server.shutdown(timeout: 5)
        }
    }

    private func post(_ path: String, body: String, extraHeaders: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: test\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\(extraHeaders)\r\n\(body)"
    }

    @Test func smallPostIsStreamedToAPrivateFileThatIsGoneAfterTheResponse() async throws {
        try await withServer(handle: { _, file in
            HTTPResponse(status: 201, headers: [("Content-Type", "text/plain")],
                         body: Data("stored \((try? Data(contentsOf: file))?.count ?? -1)".utf8))
        }) { server, uploads, recorder in
            let response = try #require(await exchange(port: server.port, post("/up%20load?name=a%20b&flag", body: "hello, world",
                                                                               extraHeaders: "Authorization: Bearer secret-token\r\n")))
            #expect(response.status == 201)
            #expect(String(decoding: response.body, as: UTF8.self) == "stored 12")
            let handled = try #require(recorder.handledRequests.first)
            #expect(handled.body == Data("hello, world".utf8))
            #expect(handled.mode == 0o600)
            #expect(handled.head.path == "/up load")
            #expect(handled.head.rawPath == "/up%20load?name=a%20b&flag")
            #expect(handled.head.query == ["name": "a b", "flag": ""])
            #expect(handled.head.headers["authorization"] == "Bearer secret-token")
            #expect(handled.head.contentLength == 12)
            #expect(handled.head.bodyPath.hasPrefix(uploads.path))
            #expect(await eventually { TestFiles.listing(uploads).isEmpty && recorder.log.count == 1 })
            let entry = try #require(recorder.log.first)
            #expect(entry.status == 201 && entry.bytesIn == 12 && entry.method == "POST" && entry.note == nil)
            #expect(!entry.text.contains("secret-token"))
            #expect(server.inFlight == 0)
        }
    }

    @Test func tenGigabyteContentLengthGets413BeforeAnyBodyIsRead() async throws {
        try await withServer(admit: { _ in .handle(bodyLimit: 1_000_000) }) { server, uploads, recorder in
            let response = try #require(await exchange(port: server.port,
                "POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: 10737418240\r\n\r\nabc"))
            #expect(response.status == 413)
            #expect(response.headers["content-type"] == "application/problem+json")
            #expect(response.json?["status"] as? Int == 413)
            #expect(recorder.handledCount == 0)
            #expect(await eventually { recorder.log.count == 1 })
            #expect(recorder.log.first?.bytesIn == 0)
            #expect(TestFiles.listing(uploads).isEmpty)
            #expect(server.inFlight == 0)
        }
    }

    @Test func admitCanAnswerAtOnceWithoutReadingTheBody() async throws {
        try await withServer(admit: { head in
            head.path == "/health" ? .respond(HTTPResponse(status: 200, body: Data("ok".utf8)))
                : .respond(HTTPResponse(status: 401, headers: [("WWW-Authenticate", "Bearer")]))
        }) { server, uploads, recorder in
            // The body is announced but never sent: the answer must not wait for it.
            let denied = try #require(await exchange(port: server.port,
                "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\n"))
            #expect(denied.status == 401)
            #expect(denied.headers["www-authenticate"] == "Bearer")
            let health = try #require(await exchange(port: server.port, "GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"))
            #expect(health.status == 200 && health.body == Data("ok".utf8))
            #expect(recorder.handledCount == 0)
            #expect(TestFiles.listing(uploads).isEmpty)
        }
    }

    @Test func requestsOverTheBoundGet503WithRetryAfterUntilSlotsFree() async throws {
        let gate = Gate()
        try await withServer(configure: { $0.maxInFlight = 2; $0.retryAfterSeconds = 3 }, handle: { _, _ in
            await gate.wait()
            return HTTPResponse(status: 200)
        }) { server, _, _ in
            let port = server.port
            async let first = exchange(port: port, post("/a", body: "one"))
            async let second = exchange(port: port, post("/b", body: "two"))
            #expect(await eventually { server.inFlight == 2 })
            let refused = try #require(await exchange(port: port, post("/c", body: "three")))
            #expect(refused.status == 503)
            #expect(refused.headers["retry-after"] == "3")
            #expect(refused.headers["content-type"] == "application/problem+json")
            #expect(refused.json?["title"] as? String == "Service Unavailable")
            #expect(refused.json?["type"] as? String == "about:blank")
            gate.open()
            #expect(await first?.status == 200)
            #expect(await second?.status == 200)
            #expect(await eventually { server.inFlight == 0 })
            #expect(await exchange(port: port, post("/d", body: "four"))?.status == 200)
        }
    }

    /// With and without the request line already sent: before it no request exists yet, after it
    /// libmicrohttpd reports the request's end, and both paths must log the deadline.
    @Test(arguments: [("", "-"), ("GET /slow HTTP/1.1\r\n", "/slow")])
    func headersTrickledByteByByteAreCutAtTheHeaderDeadline(sentAtOnce: String, loggedPath: String) async throws {
        try await withServer(configure: { $0.headerDeadline = 2; $0.idleTimeout = 30 }) { server, _, recorder in
            let port = server.port
            let elapsed: Double? = await onThread {
                guard let client = RawClient(port: port) else { return nil }
                let start = Date()
                let request = "GET /slow HTTP/1.1\r\nHost: test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n\r\n"
                client.send(sentAtOnce)
                for byte in request.utf8.dropFirst(sentAtOnce.utf8.count) {
                    if !client.send(Data([byte])) || client.isClosed(within: 1) { return Date().timeIntervalSince(start) }
                }
                return nil
            }
            let seconds = try #require(elapsed, "the connection stayed open for the whole trickle")
            #expect(seconds >= 1.5 && seconds < 10)
            #expect(await eventually {
                recorder.log.contains { $0.note == "header deadline" && $0.status == 408 && $0.rawPath == loggedPath }
            })
            #expect(recorder.handledCount == 0)
        }
    }

    @Test func keptAliveConnectionServesAgainAndItsNextHeadersHaveTheirOwnDeadline() async throws {
        try await withServer(configure: { $0.headerDeadline = 2; $0.idleTimeout = 30 }) { server, _, recorder in
            let port = server.port
            let outcome: (first: Int?, second: Int?, closedAfter: Double?) = await onThread {
                guard let client = RawClient(port: port) else { return (nil, nil, nil) }
                client.send("POST /one HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc")
                let first = client.readResponse()?.status
                // Longer than half the deadline: a deadline counted from accept would cut the next request.
                Thread.sleep(forTimeInterval: 1.2)
                client.send("POST /two HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\ndef")
                let second = client.readResponse()?.status
                let idleSince = Date()
                let closed = client.isClosed(within: 8)
                return (first, second, closed ? Date().timeIntervalSince(idleSince) : nil)
            }
            #expect(outcome.first == 200)
            #expect(outcome.second == 200)
            let closedAfter = try #require(outcome.closedAfter, "the idle kept-alive connection was never closed")
            #expect(closedAfter >= 1.5 && closedAfter < 10)
            #expect(await eventually { recorder.log.contains { $0.note == "header deadline" && $0.rawPath == "-" } })
            #expect(recorder.handledRequests.map(\.body) == [Data("abc".utf8), Data("def".utf8)])
        }
    }

    /// A dripping body is caught by the check on each chunk; a body that never comes, only by the watchdog.
    @Test(arguments: ["0123456789", ""])
    func bodyFarUnderTheMinimumRateIsClosedAndLeavesNoFile(drip: String) async throws {
        try await withServer(configure: { $0.minBodyRate = 10_000; $0.bodyGrace = 1; $0.idleTimeout = 30 }) { server, uploads, recorder in
            let port = server.port
            let elapsed: Double? = await onThread {
                guard let client = RawClient(port: port) else { return nil }
                let start = Date()
                client.send("POST /drip HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n\r\n")
                for _ in 0..<60 {
                    if !client.send(drip) || client.isClosed(within: 0.2) { return Date().timeIntervalSince(start) }
                }
                return nil
            }
            let seconds = try #require(elapsed, "the dripping connection stayed open")
            #expect(seconds >= 0.8 && seconds < 10)
            #expect(await eventually { recorder.log.contains { $0.note == "body too slow" } && TestFiles.listing(uploads).isEmpty })
            #expect(server.inFlight == 0)
            #expect(recorder.handledCount == 0)
        }
    }

    @Test func clientLeavingMidBodyLeavesNoFileAndFreesItsSlot() async throws {
        try await withServer(configure: { $0.maxInFlight = 1 }) { server, uploads, recorder in
            let port = server.port
            let client = try #require(await onThread { () -> RawClientBox? in RawClient(port: port).map(RawClientBox.init) })
            await onThread {
                client.client.send("POST /gone HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n")
                client.client.send(Data(repeating: 0x61, count: 1000))
            }
            #expect(await eventually { TestFiles.listing(uploads).count == 1 && server.inFlight == 1 })
            await onThread { client.client.abort() }
            #expect(await eventually { TestFiles.listing(uploads).isEmpty && server.inFlight == 0 })
            #expect(await eventually { recorder.log.contains { $0.note == "client went away" && $0.bytesIn == 1000 } })
            #expect(await exchange(port: port, post("/next", body: "again"))?.status == 200)
        }
    }

    @Test func chunkedBodyOverTheLimitGets413AndNoFile() async throws {
        try await withServer(admit: { _ in .handle(bodyLimit: 1000) }) { server, uploads, recorder in
            let chunk = String(repeating: "x", count: 500)
            let chunks = String(repeating: "1f4\r\n\(chunk)\r\n", count: 10)
            let response = try #require(await exchange(port: server.port,
                "POST /chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\(chunks)0\r\n\r\n"))
            #expect(response.status == 413)
            #expect(recorder.handledCount == 0)
            #expect(await eventually { TestFiles.listing(uploads).isEmpty && server.inFlight == 0 })
        }
    }

    @Test func endlessChunkedBodyOverTheLimitIsCutWithoutStoringMore() async throws {
        try await withServer(admit: { _ in .handle(bodyLimit: 1000) }) { server, uploads, recorder in
            let port = server.port
            let closed = await onThread { () -> Bool in
                guard let client = RawClient(port: port) else { return false }
                client.send("POST /endless HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
                let chunk = Data("10000\r\n".utf8) + Data(repeating: 0x62, count: 65536) + Data("\r\n".utf8)
                for _ in 0..<64 where client.send(chunk) {}
                return client.isClosed(within: 10)
            }
            #expect(closed)
            #expect(await eventually { recorder.log.contains { $0.note == "body over limit" && $0.status == 413 } })
            #expect(TestFiles.listing(uploads).isEmpty)
            #expect(server.inFlight == 0)
            #expect(recorder.handledCount == 0)
        }
    }

    @Test func shutdownLetsAdmittedRequestsFinishAndRefusesNewConnections() async throws {
        let gate = Gate()
        try await withServer(handle: { _, _ in
            await gate.wait()
            return HTTPResponse(status: 200, body: Data("finished".utf8))
        }) { server, _, _ in
            let port = server.port
            async let running = exchange(port: port, post("/long", body: "work"))
            #expect(await eventually { server.inFlight == 1 })
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await server.shutdown(timeout: 20) }
                #expect(await eventually(timeout: 5) { isRefused(port: port) })
                gate.open()
                await group.waitForAll()
            }
            let response = await running
            #expect(response?.status == 200)
            #expect(response?.body == Data("finished".utf8))
        }
    }

    @Test func shutdownStopsWaitingForAStuckHandlerAfterItsTimeout() async throws {
        let never = Gate()
        try await withServer(handle: { _, _ in
            await never.wait()
            return HTTPResponse(status: 200)
        }) { server, uploads, _ in
            let port = server.port
            async let running = exchange(port: port, post("/stuck", body: "work"))
            #expect(await eventually { server.inFlight == 1 })
            let start = ContinuousClock.now
            await server.shutdown(timeout: 0.5)
            #expect(ContinuousClock.now - start < .seconds(20), "shutdown waited for a handler that never returns")
            #expect(await running?.status == 503)
            #expect(TestFiles.listing(uploads).isEmpty)
        }
    }

    @Test func bodyThatCannotBeStoredGets500AndFreesItsSlot() async throws {
        try await withServer(configure: { $0.temporaryDirectory.appendPathComponent("missing") }) { server, _, recorder in
            let response = try #require(await exchange(port: server.port, post("/up", body: "data")))
            #expect(response.status == 500)
            #expect(response.headers["content-type"] == "application/problem+json")
            #expect((response.json?["detail"] as? String)?.contains("missing") == true)
            #expect(recorder.handledCount == 0)
            #expect(await eventually { server.inFlight == 0 })
        }
    }

    @Test(arguments: [("0", Int64(0)), ("12", 12), ("10737418240", 10_737_418_240), ("9223372036854775807", Int64.max),
                      ("", nil), ("+12", nil), ("-1", nil), (" 12", nil), ("12 ", nil), ("1e3", nil), ("0x10", nil),
                      ("9223372036854775808", nil), ("99999999999999999999", nil)] as [(String, Int64?)])
    func contentLengthIsParsedStrictly(text: String, expected: Int64?) {
        #expect(HTTPRequestHead.parseContentLength(text) == expected)
    }

    @Test(.enabled(if: ipv6LoopbackWorks()))
    func listensOnAnIPv6Literal() async throws {
        try await withServer(configure: { $0.host = "::1" }, admit: { head in
            .respond(HTTPResponse(status: 200, body: Data(head.remoteAddress.utf8)))
        }) { server, _, _ in
            let result = await Shell.runOnThread("/usr/bin/curl", ["-sS", "-g", "--max-time", "10", "http://[::1]:\(server.port)/health"])
            #expect(result.status == 0)
            #expect(result.stdout == "::1")
        }
    }

    @Test func startFailsClearlyOnATakenPortOrABadHost() async throws {
        try await withServer { server, uploads, _ in
            var taken = HTTPServerConfiguration(temporaryDirectory: uploads)
            taken.port = server.port
            let second = HTTPServer(configuration: taken, admit: { _ in .respond(HTTPResponse(status: 404)) },
                                    handle: { _, _ in HTTPResponse(status: 500) }, log: { _ in })
            let error = try #require(throws: HTTPServerError.self) { try second.start() }
            #expect(error.isListenFailure)
            #expect(error.message.contains("127.0.0.1:\(server.port)"))
            #expect(error.message.contains("Address already in use"), "\(error.message)")

            var bad = HTTPServerConfiguration(temporaryDirectory: uploads)
            bad.host = "localhost.invalid"
            let third = HTTPServer(configuration: bad, admit: { _ in .respond(HTTPResponse(status: 404)) },
                                   handle: { _, _ in HTTPResponse(status: 500) }, log: { _ in })
            #expect(throws: HTTPServerError.self) { try third.start() }
        }
    }
}

/// True when this machine can bind the IPv6 loopback address (some containers have no IPv6).
private func ipv6LoopbackWorks() -> Bool {
    let descriptor = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 }
    }
}

/// True when nothing accepts connections on the port any more.
private func isRefused(port: Int) -> Bool {
    RawClient(port: port) == nil && errno == ECONNREFUSED
}

/// Hands one client to the threads that use it in turn.
final class RawClientBox: @unchecked Sendable {
    let client: RawClient
    init(_ client: RawClient) { self.client = client }
}
