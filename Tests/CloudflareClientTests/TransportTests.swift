import Foundation
import HTTPTransport
import MediaPipeline
import TestSupport
import Testing

/// The libcurl transport on its own, against the Cloudflare fake.
struct TransportTests {
    @Test func anIdleServerTimesOutAsATransientError() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "GET", "path": "/user/tokens/verify$", "actions": [["delay": 4]]]])
        var options = CurlClient.Options()
        options.idleTimeout = .seconds(1)
        let client = CurlClient(options: options)
        await #expect {
            _ = try await client.send(HTTPRequest(method: "GET", url: fake.server.base + "/client/v4/user/tokens/verify"))
        } throws: { error in
            guard let error = error as? TransportError else { return false }
            return error.kind == .timeout && error.isTransient
        }
    }

    @Test func nothingListeningIsAConnectError() async throws {
        let fake = try await CloudflareFake()
        let base = fake.server.base
        fake.server.stop()
        await #expect {
            _ = try await CurlClient().send(HTTPRequest(method: "GET", url: base + "/client/v4/user/tokens/verify"))
        } throws: { ($0 as? TransportError)?.kind == .connect }
    }

    @Test func redirectsComeBackUnfollowed() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "GET", "path": "/user/tokens/verify$",
                                       "actions": [["redirect": "http://localhost:9/elsewhere", "status": 307]]]])
        let response = try await CurlClient().send(HTTPRequest(method: "GET", url: fake.server.base + "/client/v4/user/tokens/verify"))
        #expect(response.status == 307)
        #expect(response.header("location") == "http://localhost:9/elsewhere")
    }

    @Test func onlyHTTPAndHTTPSAreSpoken() async {
        await #expect {
            _ = try await CurlClient().send(HTTPRequest(method: "GET", url: "file:///etc/passwd"))
        } throws: { ($0 as? TransportError)?.kind == .request }
    }

    @Test func aBodyOfPiecesGoesOutWithOneExactLengthAndNoExpect() async throws {
        let fake = try await CloudflareFake()
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try patternFile(3 * 1024 * 1024 + 17, in: dir)
            // Bytes, a file range, bytes: sent as one body (the fake refuses chunked and Expect).
            let pieces: [BodyPiece] = [.bytes(Data("head".utf8)), .file(path: file.path, offset: 5, length: 2 * 1024 * 1024),
                                       .bytes(Data("tail".utf8))]
            let response = try await CurlClient().send(HTTPRequest(
                method: "POST", url: fake.server.base + "/client/v4/accounts/\(CloudflareFake.account)/stream/live_inputs",
                headers: [("Authorization", "Bearer \(CloudflareFake.token)"), ("Content-Type", "application/octet-stream")],
                body: pieces))
            let entry = try #require(try await fake.server.log().last)
            #expect(entry["bytes_in"]?.number == Double(8 + 2 * 1024 * 1024))
            #expect(entry["headers"]?["content-length"] == .string("\(8 + 2 * 1024 * 1024)"))
            #expect(entry["headers"]?["transfer-encoding"] == nil && entry["headers"]?["expect"] == nil)
            #expect(response.status == 413)  // over the JSON body limit: the fake read it all, then refused it
        }
    }

    @Test func connectionsAreReusedAcrossRequests() async throws {
        let fake = try await CloudflareFake()
        let client = CurlClient()
        let url = fake.server.base + "/client/v4/user/tokens/verify"
        let request = HTTPRequest(method: "GET", url: url, headers: [("Authorization", "Bearer \(CloudflareFake.token)")])
        let first = try await client.send(request)
        #expect(first.status == 200 && first.newConnections == 1)
        for _ in 0..<3 {
            let next = try await client.send(request)
            #expect(next.status == 200 && next.newConnections == 0)
        }
    }
}
