public import Foundation
import MediaPipeline

/// botocore's presigning, at a frozen time, as the reference the client's URLs are compared with.
public enum Botocore {
    public struct Failure: Error, CustomStringConvertible { public var description: String }

    /// The presigned PUT URL of `key` (percent-encoded by Python's `urllib.parse.quote`), bound to
    /// `Content-Type` and `Content-Length`, signed by `S3SigV4QueryAuth` for region `auto`.
    public static func presignedPut(endpoint: String, bucket: String, key: String, contentType: String, bytes: Int64, expires: Int,
                             time: Date, keys: (String, String)) throws -> String {
        let script = """
            import datetime, json, sys
            from unittest import mock
            from urllib.parse import quote
            import botocore.auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            a = json.loads(sys.argv[1])
            frozen = datetime.datetime.fromtimestamp(a["time"], datetime.timezone.utc).replace(tzinfo=None)
            url = a["endpoint"] + "/" + quote(a["bucket"], safe="") + "/" + quote(a["key"], safe="/")
            request = AWSRequest(method="PUT", url=url,
                                 headers={"Content-Type": a["type"], "Content-Length": str(a["bytes"])})
            with mock.patch.object(botocore.auth, "get_current_datetime", return_value=frozen):
                botocore.auth.S3SigV4QueryAuth(Credentials(a["access"], a["secret"]), "s3", "auto",
                                               expires=a["expires"]).add_auth(request)
            print(request.url)
            """
        let arguments = JSONValue.object([("endpoint", .string(endpoint)), ("bucket", .string(bucket)), ("key", .string(key)),
                                          ("type", .string(contentType)), ("bytes", .int(bytes)), ("expires", .int(expires)),
                                          ("time", .int(Int64(time.timeIntervalSince1970))), ("access", .string(keys.0)),
                                          ("secret", .string(keys.1))])
        let result = Shell.run("/usr/bin/env", ["python3", "-c", script, arguments.compactText])
        guard result.status == 0 else { throw Failure(description: "botocore failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
