import CCrypto
import Digests
public import Foundation

// MARK: - Signature Version 4

/// AWS Signature Version 4, in the `Authorization` header or in the query string (a presigned URL).
///
/// Two flavours of canonical URI: the generic AWS rules (`s3Rules: false`: the path is normalized and
/// URI-encoded once more on top of however it was sent) and the S3 rules (`s3Rules: true`: the path is
/// used exactly as sent, so the caller must send it already encoded — see `uriEncode(_:encodeSlash:)`).
public struct SigV4Signer: Sendable {
    public struct Credentials: Sendable {
        public var accessKeyID: String
        public var secretAccessKey: String
        public var sessionToken: String?

        public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
        }
    }

    /// The parts of one signing, exposed for tests and debugging.
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        /// The `Authorization` header's value; empty for a presigned URL, which carries none.
        public var authorization: String
    }

    /// The payload hash for a body that is not hashed.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// The payload hash of an empty body.
    public static let emptyPayloadHash = Digest.emptySHA256Hex
    public static let algorithm = "AWS4-HMAC-SHA256"

    public var credentials: Credentials
    public var region: String
    public var service: String
    public var s3Rules: Bool
    /// Whether the generic rules remove `.`/`..` segments and empty segments from the path.
    /// Defaults to `!s3Rules`; S3 never normalizes (a key may really contain `//` or `..`).
    public var normalizesPath: Bool
    /// Whether `x-amz-security-token` is part of the signature (the usual case). When false the token
    /// is still returned by `signedHeaders` but is left out of the signed headers, as a few services want.
    public var signsSessionToken: Bool = true

    public init(credentials: Credentials, region: String, service: String, s3Rules: Bool) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.s3Rules = s3Rules
        self.normalizesPath = !s3Rules
    }

    /// Signs a request. `path` is the request path exactly as it will be sent (already percent-encoded for S3),
    /// `query` the raw query string as sent (without "?", may be empty), `headers` every header that will be sent
    /// and must be signed (including "host"; names in any case; repeated names allowed), `payloadHash` the hex
    /// SHA-256 of the body or "UNSIGNED-PAYLOAD", `date` the signing time.
    ///
    /// The headers `signedHeaders` adds are signed too: `x-amz-date`, `x-amz-content-sha256` (S3 rules) and
    /// `x-amz-security-token` (with a session token), each only when `headers` does not already carry it;
    /// a caller-supplied `x-amz-date` must match `date`.
    public func sign(method: String, path: String, query: String, headers: [(name: String, value: String)],
                     payloadHash: String, date: Date) -> Signature {
        let amzDate = Self.amzDate(date)
        var all = headers
        for extra in addedHeaders(to: headers, amzDate: amzDate, payloadHash: payloadHash) where extra.signed {
            all.append((extra.name, extra.value))
        }
        let signing = signature(method: method, path: path, query: query, headers: all, payloadHash: payloadHash, amzDate: amzDate)
        let authorization = "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(signing.scope), "
            + "SignedHeaders=\(signing.signedHeaders), Signature=\(signing.signature)"
        return Signature(canonicalRequest: signing.canonicalRequest, stringToSign: signing.stringToSign,
                         signature: signing.signature, authorization: authorization)
    }

    /// Signs a request in its query string (a presigned URL) and returns the query to send: `query`
    /// followed by `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
    /// `X-Amz-SignedHeaders` (and `X-Amz-Security-Token` with a session token), then `X-Amz-Signature`.
    ///
    /// `path` and `query` are as for `sign`; `headers` are exactly the headers the URL is bound to
    /// (including "host"), which whoever uses the URL must send with the same values. Nothing is
    /// added to them: the date and the credentials travel in the query. `expires` is in seconds
    /// from `date`. S3 wants `UNSIGNED-PAYLOAD` as the payload hash, since the body is not known yet.
    public func presign(method: String, path: String, query: String, headers: [(name: String, value: String)],
                        expires: Int, payloadHash: String = SigV4Signer.unsignedPayload, date: Date) -> (query: String, signature: Signature) {
        let amzDate = Self.amzDate(date)
        let scope = Self.scope(day: String(amzDate.prefix(8)), region: region, service: service)
        var parameters: [(String, String)] = [
            ("X-Amz-Algorithm", Self.algorithm),
            ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope)"),
            ("X-Amz-Date", amzDate),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", Self.canonicalHeaders(headers).1),
        ]
        if let token = credentials.sessionToken { parameters.append(("X-Amz-Security-Token", token)) }
        let authQuery = parameters.map { Self.uriEncode($0.0, encodeSlash: true) + "=" + Self.uriEncode($0.1, encodeSlash: true) }
            .joined(separator: "&")
        let signedQuery = query.isEmpty ? authQuery : query + "&" + authQuery
        let signing = signature(method: method, path: path, query: signedQuery, headers: headers, payloadHash: payloadHash, amzDate: amzDate)
        let signature = Signature(canonicalRequest: signing.canonicalRequest, stringToSign: signing.stringToSign,
                                  signature: signing.signature, authorization: "")
        return (signedQuery + "&X-Amz-Signature=" + signing.signature, signature)
    }

    /// Convenience for callers: returns the headers to add to a request: "x-amz-date", "x-amz-content-sha256"
    /// (only when s3Rules), "x-amz-security-token" (when a session token is set) and "authorization";
    /// `headers` must include "host". A header already present in `headers` (any case) is not repeated.
    public func signedHeaders(method: String, path: String, query: String, headers: [(name: String, value: String)],
                              payloadHash: String, date: Date) -> [(name: String, value: String)] {
        let signature = sign(method: method, path: path, query: query, headers: headers,
                             payloadHash: payloadHash, date: date)
        return addedHeaders(to: headers, amzDate: Self.amzDate(date), payloadHash: payloadHash)
            .map { ($0.name, $0.value) } + [("authorization", signature.authorization)]
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC, computed from the seconds since 1970 (no calendar, locale or time zone).
    public static func amzDate(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let (days, secondOfDay) = floorDivision(seconds, 86_400)
        let (year, month, day) = civilDate(daysSince1970: days)
        let hour = secondOfDay / 3600, minute = secondOfDay / 60 % 60, second = secondOfDay % 60
        return pad(year, 4) + pad(month, 2) + pad(day, 2) + "T" + pad(hour, 2) + pad(minute, 2) + pad(second, 2) + "Z"
    }

    /// RFC 3986 encoding as SigV4 wants it: every byte of the UTF-8 form except `A-Za-z0-9-._~`
    /// becomes `%XX` (upper-case hex); `/` is kept when `encodeSlash` is false. Use it to turn an
    /// S3 key into the path to send (`"/" + bucket + "/" + uriEncode(key, encodeSlash: false)`).
    public static func uriEncode(_ text: String, encodeSlash: Bool) -> String {
        uriEncode(bytes: Array(text.utf8), encodeSlash: encodeSlash)
    }

    // MARK: Canonical parts

    /// `<yyyymmdd>/<region>/<service>/aws4_request`.
    private static func scope(day: String, region: String, service: String) -> String {
        "\(day)/\(region)/\(service)/aws4_request"
    }

    /// The one canonicalisation both kinds of signing share: canonical request, string to sign
    /// and signature over exactly `headers` and `query`.
    private func signature(method: String, path: String, query: String, headers: [(name: String, value: String)],
                           payloadHash: String, amzDate: String)
        -> (canonicalRequest: String, stringToSign: String, signature: String, signedHeaders: String, scope: String) {
        let day = String(amzDate.prefix(8))
        let scope = Self.scope(day: day, region: region, service: service)
        let (canonicalHeaders, signedHeaderList) = Self.canonicalHeaders(headers)
        let canonicalRequest = [
            method,
            canonicalURI(path),
            Self.canonicalQuery(query),
            canonicalHeaders,
            signedHeaderList,
            payloadHash,
        ].joined(separator: "\n")
        let stringToSign = [Self.algorithm, amzDate, scope, Digest.sha256Hex(canonicalRequest)].joined(separator: "\n")
        var key = Digest.hmacSHA256(key: Array(("AWS4" + credentials.secretAccessKey).utf8), data: Array(day.utf8))
        for part in [region, service, "aws4_request"] {
            key = Digest.hmacSHA256(key: key, data: Array(part.utf8))
        }
        let signature = Digest.hex(Digest.hmacSHA256(key: key, data: Array(stringToSign.utf8)))
        return (canonicalRequest, stringToSign, signature, signedHeaderList, scope)
    }

    private struct AddedHeader {
        var name: String
        var value: String
        var signed: Bool
    }

    /// The `x-amz-*` headers the signer contributes that `headers` does not already have.
    private func addedHeaders(to headers: [(name: String, value: String)], amzDate: String,
                              payloadHash: String) -> [AddedHeader] {
        let present = Set(headers.map { $0.name.trimmingCharacters(in: .whitespaces).lowercased() })
        var added: [AddedHeader] = []
        if !present.contains("x-amz-date") {
            added.append(AddedHeader(name: "x-amz-date", value: amzDate, signed: true))
        }
        if s3Rules, !present.contains("x-amz-content-sha256") {
            added.append(AddedHeader(name: "x-amz-content-sha256", value: payloadHash, signed: true))
        }
        if let token = credentials.sessionToken, !present.contains("x-amz-security-token") {
            added.append(AddedHeader(name: "x-amz-security-token", value: token, signed: signsSessionToken))
        }
        return added
    }

    /// The canonical header block (each `name:value\n`) and the `;`-joined signed header names.
    private static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (String, String) {
        var values: [String: [String]] = [:]
        var names: [String] = []
        for header in headers {
            let name = header.name.trimmingCharacters(in: .whitespaces).lowercased()
            if values[name] == nil { names.append(name) }
            values[name, default: []].append(trimAll(header.value))
        }
        names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var block = ""
        for name in names {
            block += name + ":" + values[name, default: []].joined(separator: ",") + "\n"
        }
        return (block, names.joined(separator: ";"))
    }

    /// Leading and trailing whitespace removed, every inner run of whitespace (spaces, tabs, and the
    /// line breaks of a folded value) made one space.
    private static func trimAll(_ value: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for byte in value.utf8 {
            if byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(0x20) }
                pendingSpace = false
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func canonicalURI(_ path: String) -> String {
        if s3Rules {
            let sent = normalizesPath ? Self.removingDotSegments(path) : path
            return sent.isEmpty ? "/" : sent
        }
        let plain = normalizesPath ? Self.removingDotSegments(path) : path
        if plain.isEmpty { return "/" }
        // Encode the path as sent once more: `%` becomes `%25`, so an already-encoded path ends up
        // encoded twice, as the generic rules require.
        return Self.uriEncode(plain, encodeSlash: false)
    }

    /// RFC 3986 dot-segment removal plus collapsing of empty segments (`//`); always absolute.
    private static func removingDotSegments(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        var kept: [Substring] = []
        for segment in segments {
            switch segment {
            case "", ".": continue
            case "..": if !kept.isEmpty { kept.removeLast() }
            default: kept.append(segment)
            }
        }
        if kept.isEmpty { return "/" }
        let last = segments.last ?? ""
        let trailingSlash = last.isEmpty || last == "." || last == ".."
        return "/" + kept.joined(separator: "/") + (trailingSlash ? "/" : "")
    }

    /// Pairs split on `&` (and the first `=`), decoded, re-encoded with the unreserved set, sorted by key
    /// then value. `+` is taken literally (it becomes `%2B`), never as a space.
    package static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        var pairs: [(key: String, value: String)] = []
        for piece in query.split(separator: "&", omittingEmptySubsequences: true) {
            let key: Substring, value: Substring
            if let equals = piece.firstIndex(of: "=") {
                key = piece[..<equals]
                value = piece[piece.index(after: equals)...]
            } else {
                key = piece
                value = ""
            }
            pairs.append((uriEncode(bytes: percentDecoded(key), encodeSlash: true),
                          uriEncode(bytes: percentDecoded(value), encodeSlash: true)))
        }
        pairs.sort { a, b in
            a.key == b.key ? a.value.utf8.lexicographicallyPrecedes(b.value.utf8)
                           : a.key.utf8.lexicographicallyPrecedes(b.key.utf8)
        }
        return pairs.map { $0.key + "=" + $0.value }.joined(separator: "&")
    }

    /// The bytes of `text` with each valid `%XX` replaced by its byte; a stray `%` is kept as is.
    private static func percentDecoded(_ text: Substring) -> [UInt8] {
        let bytes = Array(text.utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.count,
               let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static let upperHex = Array("0123456789ABCDEF".utf8)

    private static func uriEncode(bytes: [UInt8], encodeSlash: Bool) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where !encodeSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(upperHex[Int(byte >> 4)])
                out.append(upperHex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Calendar arithmetic

    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int) {
        var quotient = value / divisor
        var remainder = value % divisor
        if remainder < 0 {
            quotient -= 1
            remainder += divisor
        }
        return (quotient, Int(remainder))
    }

    /// The proleptic Gregorian (year, month, day) of a day count from 1970-01-01
    /// (the well-known era-based conversion: 400-year eras of 146 097 days, years starting in March).
    private static func civilDate(daysSince1970: Int64) -> (Int, Int, Int) {
        let shifted = daysSince1970 + 719_468                      // days since 0000-03-01
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097                       // 0...146096
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)   // from March 1st
        let monthIndex = (5 * dayOfYear + 2) / 153                   // 0 = March ... 11 = February
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

extension SigV4Signer.Credentials: CustomStringConvertible, CustomReflectable {
    /// Names the key ID only, so logging a signer never prints the secret or the session token.
    public var description: String {
        "Credentials(accessKeyID: \(accessKeyID), secretAccessKey: <redacted>, sessionToken: \(sessionToken == nil ? "nil" : "<redacted>"))"
    }

    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyID": accessKeyID, "secretAccessKey": "<redacted>",
                                "sessionToken": sessionToken == nil ? "nil" : "<redacted>"])
    }
}
