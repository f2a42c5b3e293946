import CCrypto
public import Foundation

/// Small hashing helpers over libcrypto's EVP interface.
public enum Digest {
    /// The hex SHA-256 of the empty string, the payload hash of every request without a body.
    public static let emptySHA256Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The lower-case hex SHA-256 of `data`.
    public static func sha256Hex(_ data: some DataProtocol) -> String {
        hex(oneShot(EVP_sha256(), data))
    }

    /// The lower-case hex SHA-256 of the UTF-8 bytes of `text`.
    public static func sha256Hex(_ text: String) -> String {
        sha256Hex(Array(text.utf8))
    }

    /// The raw MD5 of `data` (16 bytes).
    public static func md5(_ data: some DataProtocol) -> [UInt8] {
        oneShot(EVP_md5(), data)
    }

    /// The base64 MD5 of `data`, as the `Content-MD5` header wants it.
    public static func md5Base64(_ data: some DataProtocol) -> String {
        Data(md5(data)).base64EncodedString()
    }

    /// HMAC-SHA256 of `data` under `key` (32 bytes).
    public static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        // An empty Array may have no storage; libcrypto only needs a valid pointer with length 0.
        let keyBytes = key.isEmpty ? [0] : key
        let dataBytes = data.isEmpty ? [0] : data
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let result = HMAC(EVP_sha256(), keyBytes, Int32(key.count), dataBytes, data.count, &out, &length)
        precondition(result != nil && length == 32, "libcrypto HMAC-SHA256 failed")
        return Array(out.prefix(Int(length)))
    }

    /// Lower-case hex of `bytes`.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var text = [UInt8]()
        text.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func oneShot(_ type: OpaquePointer?, _ data: some DataProtocol) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { fatalError("libcrypto: EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(context) }
        precondition(EVP_DigestInit_ex(context, type, nil) == 1, "libcrypto: EVP_DigestInit_ex failed")
        for region in data.regions {
            region.withUnsafeBytes { bytes in
                if !bytes.isEmpty { _ = EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) }
            }
        }
        return finish(context)
    }

    private static func finish(_ context: OpaquePointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &out, &length) == 1, "libcrypto: EVP_DigestFinal_ex failed")
        return Array(out.prefix(Int(length)))
    }
}
