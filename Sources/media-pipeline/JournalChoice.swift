import Foundation
import MediaPipeline
import PostgresJournal
import SQLiteJournal

/// Opens the journal a run asked for: SQLite at a path (by default under the current folder), or
/// PostgreSQL when given a `postgres://` URL, from `--journal` or `MEDIA_PIPELINE_JOURNAL` (which keeps a
/// password off the command line).
enum JournalChoice {
    static let defaultPath = ".media-pipeline/journal.db"

    struct Problem: Error {
        var message: String
        /// True for a mistake in the command line (exit 2) rather than a journal that cannot be used (exit 3).
        var usage: Bool
    }

    static func open(_ flag: String?, environment: [String: String], lease: Double) async -> Result<any Journal, Problem> {
        let worker = environment["MEDIA_PIPELINE_WORKER"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        if let flag, isURL(flag), URLComponents(string: flag)?.password != nil {
            return .failure(Problem(message: "--journal must not carry a password; put the URL in MEDIA_PIPELINE_JOURNAL or the password in PGPASSWORD",
                                    usage: true))
        }
        let chosen = flag ?? environment["MEDIA_PIPELINE_JOURNAL"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultPath
        if isURL(chosen) {
            do {
                return .success(try await PostgresJournal(url: chosen, worker: worker, lease: .milliseconds(Int64(lease * 1000))))
            } catch {
                return .failure(Problem(message: "cannot use the PostgreSQL journal: \(error)", usage: false))
            }
        }
        do {
            // One machine, one run at a time: a run that died leaves claims its rerun takes over at once.
            return .success(try SQLiteJournal(path: chosen, worker: "local"))
        } catch {
            return .failure(Problem(message: "cannot use the journal \(chosen): \(error)", usage: false))
        }
    }

    static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }
}
