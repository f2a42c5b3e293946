/// File extensions that belong to each content type, for comparing a name with its content and
/// for naming uploaded objects from their content.
public enum MediaTypes {
    /// The extensions a file of `mime` may carry; the first is the one we give it.
    public static let extensions: [String: [String]] = [
        "image/jpeg": ["jpg", "jpeg", "jpe", "jfif"],
        "image/png": ["png"],
        "image/webp": ["webp"],
        "image/gif": ["gif"],
        "image/heic": ["heic", "heif"],
        "image/heif": ["heif", "heic"],
        "image/avif": ["avif"],
        "image/tiff": ["tif", "tiff"],
        "image/svg+xml": ["svg"],
        "video/mp4": ["mp4", "m4v"],
        "video/quicktime": ["mov", "qt"],
        "video/webm": ["webm"],
        "video/x-matroska": ["mkv"],
        "video/x-msvideo": ["avi"],
        "video/mpeg": ["mpg", "mpeg"],
        "video/mp2t": ["ts", "m2ts"],
        "video/3gpp": ["3gp"],
        "video/x-flv": ["flv"],
        "audio/mpeg": ["mp3"],
        "audio/x-wav": ["wav"],
        "audio/wav": ["wav"],
        "audio/ogg": ["ogg", "oga"],
        "audio/flac": ["flac"],
        "audio/x-m4a": ["m4a"],
        "audio/mp4": ["m4a"],
        "application/pdf": ["pdf"],
        "text/plain": ["txt", "text", "md", "markdown", "csv", "srt", "vtt", "log"],
        "text/csv": ["csv"],
        "application/msword": ["doc"],
        "application/vnd.ms-excel": ["xls"],
        "application/vnd.ms-powerpoint": ["ppt"],
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ["docx"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ["xlsx"],
        "application/vnd.openxmlformats-officedocument.presentationml.presentation": ["pptx"],
        "application/vnd.oasis.opendocument.text": ["odt"],
        "application/vnd.oasis.opendocument.spreadsheet": ["ods"],
        "application/vnd.oasis.opendocument.presentation": ["odp"],
        "application/epub+zip": ["epub"],
        "application/rtf": ["rtf"],
        "text/rtf": ["rtf"],
        "application/json": ["json"],
        "application/zip": ["zip"],
    ]

    /// The extension (with its dot) to give a file of `mime`, or "" when there is no usual one.
    public static func preferredExtension(for mime: String) -> String {
        extensions[mime]?.first.map { "." + $0 } ?? ""
    }
}
