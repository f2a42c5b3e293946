// swift-tools-version:6.2
import PackageDescription

/// The stage kinds that ship with the tool, one module each under Plugins/Stages/.
let stageModules: [(name: String, dependencies: [Target.Dependency])] = [
    ("ValidateStage", ["LocalMedia"]),
    ("ClassifyStage", ["LocalMedia"]),
    ("ImageTransformStage", ["LocalMedia"]),
    ("RouteStage", []),
    ("CloudflareImagesStage", ["CloudflareClient"]),
    ("CloudflareR2Stage", ["CloudflareClient"]),
    ("CloudflareStreamStage", ["CloudflareClient"]),
    ("NotifyWebhookStage", ["HTTPTransport", "Digests"]),
    ("ExecStage", ["ChildProcesses"]),
]

let package = Package(
    name: "media-pipeline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "media-pipeline", targets: ["media-pipeline"]),
        .library(name: "MediaPipeline", targets: ["MediaPipeline"]),
        .library(name: "MediaPipelineKit", targets: ["MediaPipelineKit"]),
        .plugin(name: "PipelineLint", targets: ["PipelineLint"]),
    ],
    targets: [
        // Thin C doors: one per library, Swift owns every C object.
        .systemLibrary(name: "CLibVips", path: "Sources/CLibVips", pkgConfig: "vips",
                       providers: [.apt(["libvips-dev"])]),
        .target(name: "CVips", dependencies: ["CLibVips"], path: "Sources/CVips"),
        .systemLibrary(name: "CMagic", path: "Sources/CMagic", pkgConfig: "libmagic",
                       providers: [.apt(["libmagic-dev"])]),
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),

        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CCurlShim", dependencies: ["CCurl"], path: "Sources/CCurlShim"),
        .systemLibrary(name: "CMicroHTTPD", path: "Sources/CMicroHTTPD", pkgConfig: "libmicrohttpd",
                       providers: [.apt(["libmicrohttpd-dev"])]),
        .target(name: "CMicroHTTPDShim", dependencies: ["CMicroHTTPD"], path: "Sources/CMicroHTTPDShim"),
        .systemLibrary(name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CPostgres", path: "Sources/CPostgres", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),

        // The core: no C import, no network, names no concrete stage.
        .target(name: "MediaPipeline", path: "Sources/MediaPipeline"),
        // Programs started by the tool (exec stages, decoder workers): spawned alone, spoken to over pipes.
        .target(name: "ChildProcesses", path: "Sources/ChildProcesses"),
        // Local media facts and transforms over libvips, libmagic and libcrypto.
        .target(name: "LocalMedia", dependencies: ["MediaPipeline", "ChildProcesses", "CVips", "CLibVips", "CMagic", "CCrypto"],
                path: "Sources/LocalMedia"),
        // Zip and tar archives over libarchive: a zip pre-scan, checked names, counted output, files only in a work folder.
        .target(name: "Archives", dependencies: ["MediaPipeline", "CArchive"], path: "Sources/Archives"),
        // SHA-256, MD5 and HMAC over libcrypto, for request signing and integrity checks.
        .target(name: "Digests", dependencies: ["CCrypto"], path: "Sources/Digests"),
        // HTTP over libcurl: bodies streamed from disk with an exact length, retries, shared pauses.
        .target(name: "HTTPTransport", dependencies: ["CCurlShim"], path: "Sources/HTTPTransport"),
        // An HTTP/1.1 server over libmicrohttpd: bodies streamed to files, bounded admissions, deadlines.
        .target(name: "HTTPServer", dependencies: ["CMicroHTTPD", "CMicroHTTPDShim"], path: "Sources/HTTPServer"),
        // Cloudflare's APIs (v4 for Images and Stream, S3 for R2) shared by the three sinks.
        .target(name: "CloudflareClient", dependencies: ["MediaPipeline", "HTTPTransport", "Digests", "CCrypto"],
                path: "Sources/CloudflareClient"),
        // The journal on one machine: a SQLite file behind one serialised connection.
        .target(name: "SQLiteJournal", dependencies: ["MediaPipeline", "CSQLite"], path: "Sources/SQLiteJournal"),
        // The journal many workers share: PostgreSQL over libpq, claims with leases.
        .target(name: "PostgresJournal", dependencies: ["MediaPipeline", "CPostgres"], path: "Sources/PostgresJournal"),
        // The one list of standard stage kinds.
        .target(name: "StandardStages",
                dependencies: ["MediaPipeline", "LocalMedia"] + stageModules.map { .target(name: $0.name) },
                path: "Sources/StandardStages"),
        // What a Swift app embeds: the standard stages and sinks, one file per call, delete, live inputs, direct uploads.
        .target(name: "MediaPipelineKit",
                dependencies: ["MediaPipeline", "StandardStages", "CloudflareClient", "HTTPTransport"],
                path: "Sources/MediaPipelineKit"),
        .executableTarget(name: "media-pipeline",
                          dependencies: ["MediaPipeline", "StandardStages", "MediaPipelineKit", "HTTPServer", "Digests", "LocalMedia", "CloudflareClient", "HTTPTransport", "CMalloc",
                                         "Archives", "SQLiteJournal", "PostgresJournal"],
                          path: "Sources/media-pipeline"),

        .plugin(name: "PipelineLint",
                capability: .command(intent: .custom(verb: "lint-pipeline",
                                                     description: "Validate the package's pipeline.json")),
                path: "Plugins/PipelineLint"),

        .target(name: "TestSupport", dependencies: ["MediaPipeline", "HTTPTransport"], path: "Tests/TestSupport"),
        .testTarget(name: "MediaPipelineTests", dependencies: ["MediaPipeline", "TestSupport"]),
        .testTarget(name: "StagesTests",
                    dependencies: ["MediaPipeline", "StandardStages", "LocalMedia", "TestSupport"]
                        + stageModules.map { .target(name: $0.name) }),
        .testTarget(name: "CloudflareClientTests",
                    dependencies: ["CloudflareClient", "Digests", "HTTPTransport", "MediaPipeline", "TestSupport"]),
        .testTarget(name: "ArchivesTests", dependencies: ["Archives", "MediaPipeline", "TestSupport"]),
        .testTarget(name: "SQLiteJournalTests", dependencies: ["SQLiteJournal", "MediaPipeline", "TestSupport"]),
        .testTarget(name: "PostgresJournalTests", dependencies: ["PostgresJournal", "MediaPipeline", "TestSupport"]),
        .testTarget(name: "MediaPipelineKitTests", dependencies: ["MediaPipelineKit", "MediaPipeline", "TestSupport"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["media-pipeline", "TestSupport", "MediaPipeline"]),

        // Fuzz target bodies: each parser of untrusted input fed arbitrary bytes. The tests replay
        // the seeds and every input the fuzzer found; bench/fuzz.sh runs them under libFuzzer.
        .target(name: "FuzzTargets",
                dependencies: ["MediaPipeline", "StandardStages", "LocalMedia", "Archives", "CloudflareClient", "HTTPTransport"],
                path: "Tests/Fuzz/FuzzTargets"),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzTargets"], path: "Tests/Fuzz/RegressionTests"),
    ] + stageModules.map { module in
        .target(name: module.name, dependencies: ["MediaPipeline"] + module.dependencies,
                path: "Plugins/Stages/\(module.name)")
    }
)

// The libFuzzer driver exists only for bench/fuzz.sh (which sets MEDIA_PIPELINE_FUZZ and builds
// into its own scratch path), so the normal build never compiles or links it.
if Context.environment["MEDIA_PIPELINE_FUZZ"] != nil {
    package.targets.append(.executableTarget(name: "media-pipeline-fuzz", dependencies: ["FuzzTargets"],
                                             path: "Tests/Fuzz/FuzzDriver"))
}

// Strict settings for every Swift target, set once.
for target in package.targets where target.type != .system && target.type != .plugin {
    if target.name == "CVips" || target.name == "CCurlShim" || target.name == "CMicroHTTPDShim" { continue }
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("InternalImportsByDefault"),
        .treatAllWarnings(as: .error),
    ]
}
