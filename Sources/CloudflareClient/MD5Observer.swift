import CCrypto
public import HTTPTransport
import Synchronization

/// MD5 of a body taken while libcurl reads it for sending, restarted on every try.
public final class MD5Observer: BodyObserver {
    private final class Context: @unchecked Sendable {
        let pointer: OpaquePointer
        init() {
            guard let context = EVP_MD_CTX_new() else { fatalError("libcrypto: EVP_MD_CTX_new failed") }
            pointer = context
        }
        deinit { EVP_MD_CTX_free(pointer) }
    }

    private let context = Mutex(Context())

    public init() { begin() }

    public func begin() {
        context.withLock { _ = EVP_DigestInit_ex($0.pointer, EVP_md5(), nil) }
    }

    public func consume(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        context.withLock { _ = EVP_DigestUpdate($0.pointer, base, bytes.count) }
    }

    /// The digest of what was consumed since the last `begin` (the running state is kept).
    public var digest: [UInt8] {
        context.withLock { context in
            guard let copy = EVP_MD_CTX_new() else { return [] }
            defer { EVP_MD_CTX_free(copy) }
            _ = EVP_MD_CTX_copy_ex(copy, context.pointer)
            var out = [UInt8](repeating: 0, count: 16)
            var length: UInt32 = 0
            _ = EVP_DigestFinal_ex(copy, &out, &length)
            return out
        }
    }
}
