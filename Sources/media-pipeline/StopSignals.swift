import Dispatch
import Foundation
import MediaPipeline

/// SIGINT and SIGTERM during a run: the first stops new files from starting (files in flight
/// finish, the rest end `pending`, journal and manifest are flushed, exit 130/143); a second one
/// aborts at once. The journal stays consistent either way, since each write commits on its own.
final class StopSignals {
    private let sources: [any DispatchSourceSignal]

    init(stop: StopSwitch, console: Console, workFolder: URL?) {
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if stop.pull(signal: number) {
                    console.err("stopping: no new files start; files in flight finish (press Ctrl-C again to abort now)")
                } else {
                    console.err("aborting: unfinished files stay pending in the journal; a rerun resumes them")
                    if let workFolder { try? FileManager.default.removeItem(at: workFolder) }
                    _exit(128 + number)
                }
            }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func cancel() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
