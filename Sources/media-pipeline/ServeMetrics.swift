import Foundation
import MediaPipeline
import Synchronization

/// What `GET /metrics` reports, in Prometheus' text format: files by status and sink, bytes
/// stored, provider retries, direct-upload URLs handed out, requests by route and status with
/// a latency histogram, and requests in flight.
final class ServeMetrics: Sendable {
    static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    private struct Histogram {
        var counts = [Int](repeating: 0, count: ServeMetrics.buckets.count)
        var sum = 0.0
        var count = 0
    }

    private struct State {
        var assets: [String: Int] = [:]            // "status|sink"
        var bytes: [String: Int64] = [:]           // sink
        var retries: [String: Int] = [:]           // sink
        var directUploads: [String: Int] = [:]     // "sink|status"
        var requests: [String: Int] = [:]          // "route|code"
        var latency: [String: Histogram] = [:]     // route
    }

    private let state = Mutex(State())

    /// One file that went through the pipeline (`POST /v1/assets`).
    func record(asset report: AssetReport) {
        state.withLock { state in
            let sink = report.sink ?? "none"
            state.assets["\(report.status.rawValue)|\(sink)", default: 0] += 1
            guard report.status == .uploaded else { return }
            if case let .number(n)? = report.result?["bytes"] { state.bytes[sink, default: 0] += Int64(n) }
            else { state.bytes[sink, default: 0] += report.bytes ?? 0 }
            if case let .number(n)? = report.result?["retries"] { state.retries[sink, default: 0] += Int(exactly: n) ?? 0 }
        }
    }

    /// One direct-upload URL asked for.
    func record(directUpload report: AssetReport) {
        state.withLock { $0.directUploads["\(report.sink ?? "none")|\(report.status.rawValue)", default: 0] += 1 }
    }

    /// One answered request.
    func record(route: String, status: Int, seconds: Double) {
        state.withLock { state in
            state.requests["\(route)|\(status)", default: 0] += 1
            var histogram = state.latency[route] ?? Histogram()
            for (i, bound) in Self.buckets.enumerated() where seconds <= bound { histogram.counts[i] += 1 }
            histogram.sum += seconds
            histogram.count += 1
            state.latency[route] = histogram
        }
    }

    /// The exposition text.
    func render(inFlight: Int) -> String {
        let state = state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        func pairs(_ key: String, _ names: [String]) -> String {
            zip(names, key.split(separator: "|", omittingEmptySubsequences: false))
                .map { "\($0)=\"\(Self.escape(String($1)))\"" }.joined(separator: ",")
        }
        family("media_pipeline_assets_total", "counter", "Files through the pipeline, by final status and sink.")
        for (key, n) in state.assets.sorted(by: { $0.key < $1.key }) { out += "media_pipeline_assets_total{\(pairs(key, ["status", "sink"]))} \(n)\n" }
        family("media_pipeline_uploaded_bytes_total", "counter", "Bytes stored, by sink.")
        for (sink, n) in state.bytes.sorted(by: { $0.key < $1.key }) { out += "media_pipeline_uploaded_bytes_total{sink=\"\(Self.escape(sink))\"} \(n)\n" }
        family("media_pipeline_provider_retries_total", "counter", "Requests to a provider sent again after transient trouble, by sink.")
        for (sink, n) in state.retries.sorted(by: { $0.key < $1.key }) { out += "media_pipeline_provider_retries_total{sink=\"\(Self.escape(sink))\"} \(n)\n" }
        family("media_pipeline_direct_uploads_total", "counter", "Direct upload URLs asked for, by sink and outcome.")
        for (key, n) in state.directUploads.sorted(by: { $0.key < $1.key }) { out += "media_pipeline_direct_uploads_total{\(pairs(key, ["sink", "status"]))} \(n)\n" }
        family("media_pipeline_http_requests_total", "counter", "Requests answered, by route and status code.")
        for (key, n) in state.requests.sorted(by: { $0.key < $1.key }) { out += "media_pipeline_http_requests_total{\(pairs(key, ["route", "code"]))} \(n)\n" }
        family("media_pipeline_http_request_duration_seconds", "histogram", "Time from a request's headers to its answer, by route.")
        for (route, histogram) in state.latency.sorted(by: { $0.key < $1.key }) {
            let label = "route=\"\(Self.escape(route))\""
            for (i, bound) in Self.buckets.enumerated() {
                out += "media_pipeline_http_request_duration_seconds_bucket{\(label),le=\"\(bound)\"} \(histogram.counts[i])\n"
            }
            out += "media_pipeline_http_request_duration_seconds_bucket{\(label),le=\"+Inf\"} \(histogram.count)\n"
            out += "media_pipeline_http_request_duration_seconds_sum{\(label)} \(histogram.sum)\n"
            out += "media_pipeline_http_request_duration_seconds_count{\(label)} \(histogram.count)\n"
        }
        family("media_pipeline_http_requests_in_flight", "gauge", "Admitted requests being handled now.")
        out += "media_pipeline_http_requests_in_flight \(inFlight)\n"
        return out
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
