import Foundation
import MediaPipeline
import MediaPipelineKit

// upload-one PIPELINE FILE [PURPOSE]
// Runs one file through the pipeline with the credentials in the environment and prints the
// manifest row as JSON. Exit status: 0 uploaded, 1 refused, 4 provider trouble, 2 usage.
let arguments = CommandLine.arguments.dropFirst()
guard (2...3).contains(arguments.count) else {
    FileHandle.standardError.write(Data("usage: upload-one PIPELINE FILE [PURPOSE]\n".utf8))
    exit(2)
}
let pipelineFile = URL(fileURLWithPath: arguments[arguments.startIndex])
let file = URL(fileURLWithPath: arguments[arguments.startIndex + 1])
let purpose = arguments.count == 3 ? arguments.last : nil

let media: MediaService
do {
    media = try MediaService(pipelineFile: pipelineFile)
} catch {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    exit(2)
}
let report = await media.process(file: file, filename: file.lastPathComponent, purpose: purpose)
await media.finish()
print(report.json.compactText)
if let ref = MediaRef(sink: report.sink, result: report.result) {
    FileHandle.standardError.write(Data("stored as \(ref); delete it with MediaService.delete(_:)\n".utf8))
}
switch report.status {
case .uploaded, .unchanged: exit(0)
case .failed: exit(4)
default: exit(1)
}
