import CCurlShim
import Foundation
import Synchronization

/// HTTP over libcurl.
///
/// Why not URLSession: on Linux it sends `Transfer-Encoding: chunked` together with
/// `Content-Length` for streamed bodies, which tus servers and S3 refuse. Here every body goes
/// out with its exact length, read from disk as it is sent; `Expect:` is always empty (Cloudflare
/// never answers `100 Continue`); redirects are never followed; TLS uses the system trust store
/// with no way to turn verification off; only http and https are spoken. Idle handles are kept
/// so their connections are reused.
public final class CurlClient: Sendable {
    public struct Options: Sendable {
        public var connectTimeout: Duration = .seconds(10)
        /// A transfer that moves no byte for this long is given up as a timeout.
        public var idleTimeout: Duration = .seconds(60)
        public var userAgent = "media-pipeline"

        public init() {}
    }

    private let options: Options
    private let idle = Mutex<[Handle]>([])
    private static let maxIdle = 32
    private static let globalInit: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    public init(options: Options = Options()) {
        _ = Self.globalInit
        self.options = options
    }

    deinit {
        idle.withLock { handles in handles.removeAll() }
    }

    /// Sends the request on a thread of its own (libcurl blocks) and returns the final response,
    /// whatever its status. Throws `TransportError` when no response came.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try self.perform(request) })
            }
        }
    }

    /// The blocking exchange.
    func perform(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let scheme = request.url.split(separator: ":", maxSplits: 1).first?.lowercased(), scheme == "https" || scheme == "http" else {
            throw TransportError(.request, "only http and https URLs are sent: \(request.url)")
        }
        let transfer = try Transfer(body: request.body, observer: request.observer, idleLimit: Self.seconds(options.idleTimeout))
        defer { transfer.close() }
        let handle = idle.withLock { $0.popLast() } ?? Handle()
        guard let curl = handle.curl else { throw TransportError(.request, "libcurl could not start a transfer") }

        var headerList: UnsafeMutablePointer<curl_slist>?
        var lines = request.headers.map { "\($0.name): \($0.value)" }
        lines.append("Expect:")
        if request.sendsBody { lines.append("Transfer-Encoding:") }
        for line in lines { headerList = curl_slist_append(headerList, line) }
        defer { curl_slist_free_all(headerList) }

        let box = Unmanaged.passRetained(transfer)
        defer { box.release() }
        let state = box.toOpaque()

        mp_curl_set_string(curl, CURLOPT_URL, request.url)
        mp_curl_set_string(curl, CURLOPT_PROTOCOLS_STR, "http,https")
        mp_curl_set_long(curl, CURLOPT_NOSIGNAL, 1)
        mp_curl_set_long(curl, CURLOPT_FOLLOWLOCATION, 0)
        mp_curl_set_long(curl, CURLOPT_PATH_AS_IS, 1)
        mp_curl_set_long(curl, CURLOPT_SSL_VERIFYPEER, 1)
        mp_curl_set_long(curl, CURLOPT_SSL_VERIFYHOST, 2)
        mp_curl_set_long(curl, CURLOPT_TCP_KEEPALIVE, 1)
        mp_curl_set_long(curl, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(options.connectTimeout))
        // Not CURLOPT_LOW_SPEED_TIME: libcurl averages the speed over the last few seconds, so
        // a request whose body went out fast and then met silence was given up seconds late.
        mp_curl_set_progress(curl, Transfer.progressCallback)
        mp_curl_set_pointer(curl, CURLOPT_XFERINFODATA, state)
        if let timeout = request.timeout { mp_curl_set_long(curl, CURLOPT_TIMEOUT_MS, Self.milliseconds(timeout)) }
        mp_curl_set_string(curl, CURLOPT_USERAGENT, options.userAgent)
        mp_curl_set_pointer(curl, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
        mp_curl_set_io(curl, CURLOPT_HEADERFUNCTION, Transfer.headerCallback)
        mp_curl_set_pointer(curl, CURLOPT_HEADERDATA, state)
        mp_curl_set_io(curl, CURLOPT_WRITEFUNCTION, Transfer.writeCallback)
        mp_curl_set_pointer(curl, CURLOPT_WRITEDATA, state)
        mp_curl_set_long(curl, CURLOPT_BUFFERSIZE, 256 * 1024)

        switch request.method {
        case "GET":
            break
        case "HEAD":
            mp_curl_set_long(curl, CURLOPT_NOBODY, 1)
        default:
            if request.sendsBody {
                // Upload mode reads the body through the callback with the exact length given
                // here; the custom method turns its PUT into POST or PATCH.
                mp_curl_set_long(curl, CURLOPT_UPLOAD, 1)
                mp_curl_set_offset(curl, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.bodyLength))
                mp_curl_set_io(curl, CURLOPT_READFUNCTION, Transfer.readCallback)
                mp_curl_set_pointer(curl, CURLOPT_READDATA, state)
                mp_curl_set_long(curl, CURLOPT_UPLOAD_BUFFERSIZE, 512 * 1024)
            }
            mp_curl_set_string(curl, CURLOPT_CUSTOMREQUEST, request.method)
        }

        let code = curl_easy_perform(curl)
        var status = 0
        var statusLong = 0
        if mp_curl_info_long(curl, CURLINFO_RESPONSE_CODE, &statusLong) == CURLE_OK { status = statusLong }
        var connects = 0
        _ = mp_curl_info_long(curl, CURLINFO_NUM_CONNECTS, &connects)
        // A handle keeps its connection cache across a reset; a failed one is dropped with it.
        if code == CURLE_OK {
            curl_easy_reset(curl)
            idle.withLock { if $0.count < Self.maxIdle { $0.append(handle) } }
        }
        guard code == CURLE_OK else {
            if let problem = transfer.readProblem { throw TransportError(.request, problem) }
            if transfer.idledOut {
                let host = URL(string: request.url)?.host ?? request.url
                throw TransportError(.timeout, "\(host) timed out: no byte sent or received for \(Self.milliseconds(options.idleTimeout)) ms")
            }
            throw Self.error(code, url: request.url)
        }
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.body, newConnections: connects)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func milliseconds(_ d: Duration) -> Int {
        Int(d.components.seconds) * 1000 + Int(d.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Sorts libcurl's failure codes into the kinds callers decide on.
    static func error(_ code: CURLcode, url: String) -> TransportError {
        let text = String(cString: curl_easy_strerror(code))
        let host = URL(string: url)?.host ?? url
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return TransportError(.connect, "cannot connect to \(host): \(text)")
        case CURLE_OPERATION_TIMEDOUT:
            return TransportError(.timeout, "\(host) timed out: \(text)")
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM,
             CURLE_ABORTED_BY_CALLBACK,
             // A reused connection died before any answer. libcurl would resend the body by itself
             // if it could rewind it; it is not given that, so the sink's own retry decides (a tus
             // upload asks the server's offset first, an Images upload checks for the id).
             CURLE_SEND_FAIL_REWIND:
            return TransportError(.broken, "the connection to \(host) broke: \(text)")
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE,
             CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS:
            return TransportError(.tls, "TLS with \(host) failed, the certificate is not trusted (no insecure fallback): \(text)")
        default:
            return TransportError(.request, "request to \(host) failed: \(text)")
        }
    }
}

/// One libcurl easy handle; kept between requests so its connections are reused.
private final class Handle: @unchecked Sendable {
    let curl: UnsafeMutableRawPointer?
    init() { curl = curl_easy_init() }
    deinit { if let curl { curl_easy_cleanup(curl) } }
}

/// The state of one exchange, reached from libcurl's callbacks.
private final class Transfer {
    private let pieces: [BodyPiece]
    private let observer: (any BodyObserver)?
    private var pieceIndex = 0
    private var pieceOffset: Int64 = 0
    private var descriptors: [String: Int32] = [:]
    var readProblem: String?
    /// The longest time without a byte moving either way, in seconds.
    private let idleLimit: Double
    private var moved: Int64 = -1
    private var lastMoved = DispatchTime.now()
    /// The transfer was stopped because nothing moved for `idleLimit`.
    var idledOut = false
    var headers: [(name: String, value: String)] = []
    var body = Data()
    /// Response bodies are small JSON or XML; anything past this is dropped.
    static let maxBody = 8 * 1024 * 1024

    init(body: [BodyPiece], observer: (any BodyObserver)?, idleLimit: Double) throws {
        pieces = body
        self.idleLimit = idleLimit
        self.observer = observer
        observer?.begin()
        for case let .file(path, _, _) in body where descriptors[path] == nil {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                for fd in descriptors.values { _ = Foundation.close(fd) }
                throw TransportError(.request, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            descriptors[path] = fd
        }
    }

    func close() {
        for fd in descriptors.values { _ = Foundation.close(fd) }
        descriptors.removeAll()
    }

    /// Fills libcurl's buffer from the pieces in order; 0 at the end.
    func read(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        var written = 0
        while written < capacity, pieceIndex < pieces.count {
            let piece = pieces[pieceIndex]
            let left = piece.length - pieceOffset
            if left == 0 {
                pieceIndex += 1
                pieceOffset = 0
                continue
            }
            let want = Int(min(Int64(capacity - written), left))
            let got: Int
            switch piece {
            case let .bytes(data):
                let start = data.startIndex + Int(pieceOffset)
                data.copyBytes(to: UnsafeMutableRawPointer(buffer + written).assumingMemoryBound(to: UInt8.self),
                               from: start..<start + want)
                got = want
            case let .file(path, offset, _):
                got = pread(descriptors[path]!, buffer + written, want, off_t(offset + pieceOffset))
                if got <= 0 {
                    readProblem = got == 0 ? "\(path) became shorter while it was being sent"
                        : "cannot read \(path): \(String(cString: strerror(errno)))"
                    return mp_curl_read_abort()
                }
            }
            written += got
            pieceOffset += Int64(got)
        }
        observer?.consume(UnsafeRawBufferPointer(start: buffer, count: written))
        return written
    }

    func header(_ line: String) {
        switch HTTPResponse.HeaderLine(line) {
        case .statusLine: headers.removeAll()  // a new response (after a 100 or similar) starts over
        case let .field(name, value): headers.append((name, value))
        case .other: break
        }
    }

    /// libcurl calls this often while bytes move and about once a second while none do;
    /// a non-zero return stops the transfer.
    func progress(downloaded: Int64, uploaded: Int64) -> Int32 {
        let now = DispatchTime.now()
        if downloaded + uploaded != moved {
            moved = downloaded + uploaded
            lastMoved = now
            return 0
        }
        guard Double(now.uptimeNanoseconds - lastMoved.uptimeNanoseconds) / 1e9 >= idleLimit else { return 0 }
        idledOut = true
        return 1
    }

    static let progressCallback: mp_curl_progress_fn = { userdata, _, downloaded, _, uploaded in
        guard let userdata else { return 0 }
        let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
        return transfer.progress(downloaded: Int64(downloaded), uploaded: Int64(uploaded))
    }

    static let readCallback: mp_curl_io_fn = { buffer, size, count, userdata in
        guard let buffer, let userdata else { return 0 }
        let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
        return transfer.read(into: buffer, capacity: size * count)
    }

    static let writeCallback: mp_curl_io_fn = { buffer, size, count, userdata in
        guard let buffer, let userdata else { return 0 }
        let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
        let n = size * count
        if transfer.body.count < maxBody {
            transfer.body.append(UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self), count: min(n, maxBody - transfer.body.count))
        }
        return n
    }

    static let headerCallback: mp_curl_io_fn = { buffer, size, count, userdata in
        guard let buffer, let userdata else { return 0 }
        let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
        let n = size * count
        transfer.header(String(decoding: UnsafeRawBufferPointer(start: buffer, count: n), as: UTF8.self))
        return n
    }
}
