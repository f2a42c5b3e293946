@testable import CloudflareClient
import Testing

/// A server's error text is shown to people: echoed credentials must not survive, whole or cut.
struct ServerTextTests {
    @Test(arguments: [
        ("headers: Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghij"),
        ("Bearer abcdefghijklmnopqrstuvwxyz0123456789; host: x", "abcdefghij"),
        ("Authorization=AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEY12345/20260101/auto/s3/aws4_request", "AKIAEXAMPLE"),
        ("Credential=AKIAEXAMPLEKEY12345/20260101/auto/s3/aws4_request, SignedHeaders=host", "AKIAEXAMPLE"),
    ])
    func echoedCredentialsAreMaskedBeforeTheCut(_ text: String, _ secretPiece: String) {
        for limit in [20, 40, 60, 160] {
            let shown = ServerText.clean(String(repeating: "x", count: 10) + " " + text, limit: limit)
            #expect(!shown.contains(secretPiece), "limit \(limit): \(shown)")
            #expect(shown.count <= limit)
        }
    }

    @Test func ordinaryTextIsKept() {
        #expect(ServerText.clean("Image too large (over 10 MB)") == "Image too large (over 10 MB)")
    }
}
