// swift-tools-version:6.2
import PackageDescription

// A tiny app that embeds media-pipeline: the same pipeline.json, one uploaded file per call.
let package = Package(
    name: "embedding-example",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "media-pipeline", path: "../..")],
    targets: [
        .executableTarget(name: "upload-one",
                          dependencies: [.product(name: "MediaPipelineKit", package: "media-pipeline")],
                          path: "Sources/UploadOne"),
    ]
)
