import CloudflareClient
import Foundation
import HTTPTransport
import LocalMedia
import MediaPipeline
import MediaPipelineKit

extension CloudAccount {
    static func exitCode(_ error: SinkError) -> Int32 {
        switch error.severity {
        case .fatal: 3
        case .failed: 4
        case .rejected: 1
        }
    }
}

/// `media-pipeline delete REF…`: removes uploaded media by reference.
struct DeleteCommand {
    static let spec = CommandSpec(
        name: "delete", usage: "delete REF…",
        abstract: "Delete uploaded media: images:<id>, r2:<key>, stream:<uid>.", options: [],
        discussion: """
            A reference that is already gone is reported and counts as done.
            Exit codes: 0 all deleted, 2 a malformed reference or missing variable (nothing deleted),
            3 credentials refused, 4 a provider kept failing.
            """)

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() async -> Int32 {
        guard !arguments.positional.isEmpty else {
            console.err("error: name at least one reference; see 'media-pipeline delete --help'")
            return 2
        }
        var refs: [MediaRef] = []
        for text in arguments.positional {
            guard let ref = MediaRef(text) else {
                console.err("error: '\(Console.escape(text))' is not a reference; write images:<id>, r2:<key> or stream:<uid>")
                return 2
            }
            refs.append(ref)
        }
        let account = CloudAccount(environment: environment)
        let needed = Set(refs.flatMap { CloudAccount.variables(for: $0.provider, environment: environment) })
        let problems = account.problems(needing: needed.sorted())
        guard problems.isEmpty else {
            for problem in problems { console.err("error: \(problem)") }
            return 2
        }
        var code: Int32 = 0
        for ref in refs {
            let name = Console.escape(ref.description)
            do {
                let existed = try await account.delete(ref)
                console.out(existed ? "deleted \(name)" : "already gone \(name)")
            } catch {
                console.err("error: \(name): \(error.reason)")
                code = max(code, CloudAccount.exitCode(error))
                if error.severity == .fatal { return 3 }
            }
        }
        return code
    }
}

/// `media-pipeline doctor`: what works and what to fix, one line each.
struct DoctorCommand {
    static let spec = CommandSpec(
        name: "doctor", usage: "doctor",
        abstract: "Check libvips, each sink's variables, the API token and the R2 bucket.", options: [],
        discussion: "Exit codes: 0 everything works, 1 something needs fixing (each problem says how).")

    let environment: [String: String]
    let console: Console

    func run() async -> Int32 {
        var problems = 0
        func ok(_ text: String) { console.out("ok       \(text)") }
        func problem(_ text: String, fix: String) {
            problems += 1
            console.out("problem  \(text)\n         fix: \(fix)")
        }

        do {
            try Vips.start()
            let loaders = ["jpegload", "pngload", "webpload", "gifload", "heifload", "tiffload", "svgload", "pdfload"]
            let present = loaders.filter(Vips.hasOperation).map { $0.replacingOccurrences(of: "load", with: "") }
            let missing = loaders.filter { !Vips.hasOperation($0) }.map { $0.replacingOccurrences(of: "load", with: "") }
            ok("libvips \(Vips.version): loaders \(present.joined(separator: " "))" + (missing.isEmpty ? "" : "; absent \(missing.joined(separator: " "))"))
            let blocked = try Vips.untrustedOperations().filter(\.blocked).count
            ok("libvips untrusted loaders blocked: \(blocked)")
        } catch {
            problem("libvips cannot start: \(error)", fix: "install libvips (apt-get install libvips42)")
        }

        let account = CloudAccount(environment: environment)
        for endpoint in account.environment.endpointProblems() {
            problem(endpoint, fix: "use an https:// URL (http:// only for a local emulator on 127.0.0.1)")
        }
        let apiMissing = account.environment.missing([CloudflareEnvironment.accountID, CloudflareEnvironment.apiToken])
        if apiMissing.isEmpty {
            ok("Images and Stream: \(CloudflareEnvironment.accountID) and \(CloudflareEnvironment.apiToken) are set")
            await checkToken(account, ok: ok, problem: problem)
        } else {
            problem("Images and Stream are not configured: \(apiMissing.joined(separator: ", ")) not set",
                    fix: "export \(apiMissing.map { "\($0)=…" }.joined(separator: " ")) (the token needs Images Write and Stream Edit); images then go to R2")
        }
        var r2Needed = [CloudflareEnvironment.r2AccessKeyID, CloudflareEnvironment.r2SecretAccessKey, CloudflareEnvironment.r2Bucket]
        if environment[CloudflareEnvironment.r2Endpoint] == nil { r2Needed.insert(CloudflareEnvironment.accountID, at: 0) }
        let r2Missing = account.environment.missing(r2Needed)
        if r2Missing.isEmpty {
            do {
                let status = try await account.r2.headBucket()
                switch status {
                case 200..<300: ok("R2 bucket '\(account.r2.bucket)' is reachable at \(account.r2.endpoint)")
                case 404: problem("R2 has no bucket '\(account.r2.bucket)'", fix: "create it, or set \(CloudflareEnvironment.r2Bucket) to an existing bucket")
                default: problem("R2 answered HEAD on the bucket with HTTP \(status)", fix: R2Client.credentialsHelp)
                }
            } catch {
                problem("R2: \(error.reason.detail)", fix: error.severity == .fatal ? R2Client.credentialsHelp : "check \(CloudflareEnvironment.r2Endpoint) / the network")
            }
        } else {
            problem("R2 is not configured: \(r2Missing.joined(separator: ", ")) not set",
                    fix: "export \(r2Missing.map { "\($0)=…" }.joined(separator: " ")) (an R2 API token's key pair)")
        }
        if environment[CloudflareEnvironment.r2PublicBaseURL] == nil {
            ok("\(CloudflareEnvironment.r2PublicBaseURL) not set: R2 results carry keys, not public URLs")
        }
        console.out(problems == 0 ? "everything works" : "\(problems) problem\(problems == 1 ? "" : "s") to fix")
        return problems == 0 ? 0 : 1
    }

    private func checkToken(_ account: CloudAccount, ok: (String) -> Void, problem: (String, String) -> Void) async {
        let api = account.api
        var verified = false
        for url in ["\(account.environment.apiBase)/user/tokens/verify", "\(account.environment.accountBase)/tokens/verify"] where !verified {
            if let answer = try? await api.send(api.request("GET", url)), answer.success,
               answer.result?["status"] == .string("active") {
                verified = true
            }
        }
        guard verified else {
            problem("\(CloudflareEnvironment.apiToken) is not an active token (token verify failed)",
                    "create an API token with Images Write and Stream Edit and export it as \(CloudflareEnvironment.apiToken)")
            return
        }
        ok("\(CloudflareEnvironment.apiToken) is active")
        for (name, path, permission) in [("Images", "/images/v1/stats", "Images Write"), ("Stream", "/stream", "Stream Edit")] {
            do {
                let answer = try await api.send(api.request("GET", account.environment.accountBase + path))
                if answer.success { ok("\(name) answers for this account") } else {
                    problem("\(name) answered \(answer.summary)", "give the token \(permission), and check the product is enabled on the account")
                }
            } catch {
                problem("\(name): \(error.reason.detail)", "give the token \(permission) on account \(CloudflareEnvironment.accountID)")
            }
        }
    }
}

/// `media-pipeline live create|list|delete`: Stream live inputs.
struct LiveCommand {
    static let spec = CommandSpec(
        name: "live", usage: "live create --name NAME [--record] | live list | live delete UID",
        abstract: "Create, list and delete Stream live inputs.",
        options: [
            .init(name: "name", value: "NAME", help: "With create: the live input's name."),
            .init(name: "record", value: nil, help: "With create: record broadcasts automatically."),
            .init(name: "json", value: nil, help: "Print the API's object as JSON."),
        ],
        discussion: """
            'create' prints the RTMPS and SRT ingest URLs and keys on stdout for you alone; they are
            secrets and never go to logs. Exit codes: 0 done, 2 usage, 3 credentials refused, 4 provider failing.
            """)

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() async -> Int32 {
        let action = arguments.positional.first ?? ""
        let account = CloudAccount(environment: environment)
        let problems = account.problems(needing: [CloudflareEnvironment.accountID, CloudflareEnvironment.apiToken])
        guard ["create", "list", "delete"].contains(action) else {
            console.err("error: say 'live create --name NAME', 'live list' or 'live delete UID'")
            return 2
        }
        guard problems.isEmpty else {
            for problem in problems { console.err("error: \(problem)") }
            return 2
        }
        let stream = account.stream
        do {
            switch action {
            case "create":
                guard let name = arguments.value("name"), !name.isEmpty else {
                    console.err("error: live create needs --name NAME")
                    return 2
                }
                let input = try await stream.createLiveInput(name: name, recording: arguments.flag("record"))
                if arguments.flag("json") { console.out(input.prettyText) } else { describe(input) }
            case "list":
                let inputs = try await stream.liveInputs()
                if arguments.flag("json") { console.out(JSONValue.array(inputs).prettyText) }
                for input in inputs where !arguments.flag("json") {
                    console.out("\(text(input["uid"]))  \(text(input["meta"]?["name"]))  created \(text(input["created"]))")
                }
                if inputs.isEmpty, !arguments.flag("json") { console.err("no live inputs") }
            default:
                guard arguments.positional.count == 2 else {
                    console.err("error: live delete takes one UID")
                    return 2
                }
                let uid = arguments.positional[1]
                console.out(try await stream.deleteLiveInput(uid: uid) ? "deleted live input \(Console.escape(uid))"
                            : "already gone: live input \(Console.escape(uid))")
            }
            return 0
        } catch {
            console.err("error: \(error.reason.detail)")
            return CloudAccount.exitCode(error)
        }
    }

    private func text(_ value: JSONValue?) -> String {
        if case let .string(s)? = value { return s }
        return value?.compactText ?? "-"
    }

    /// The ingest details, for the person who asked.
    private func describe(_ input: JSONValue) {
        console.out("live input \(text(input["uid"])) (\(text(input["meta"]?["name"])))")
        console.out("  RTMPS  url: \(text(input["rtmps"]?["url"]))")
        console.out("         stream key: \(text(input["rtmps"]?["streamKey"]))")
        console.out("  SRT    url: \(text(input["srt"]?["url"]))")
        console.out("         stream id: \(text(input["srt"]?["streamId"]))  passphrase: \(text(input["srt"]?["passphrase"]))")
        if input["webRTC"] != nil { console.out("  WebRTC url: \(text(input["webRTC"]?["url"]))") }
        console.out("Keep these secret: anyone with the key can broadcast to this input.")
    }
}
