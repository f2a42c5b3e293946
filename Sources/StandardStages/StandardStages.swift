public import MediaPipeline
public import LocalMedia
import ValidateStage
import ClassifyStage
import ImageTransformStage
import RouteStage
import CloudflareImagesStage
import CloudflareR2Stage
import CloudflareStreamStage
import ExecStage
import NotifyWebhookStage

/// The one list of the stage kinds that ship with media-pipeline, shared by the CLI and by
/// apps that embed the pipeline.
public enum StandardStages {
    /// Every standard stage factory.
    public static let factories: [StageFactory] = [
        ValidateStage.factory,
        ClassifyStage.factory,
        ImageTransformStage.factory,
        RouteStage.factory,
        CloudflareImagesStage.factory,
        CloudflareR2Stage.factory,
        CloudflareStreamStage.factory,
        NotifyWebhookStage.factory,
        ExecStage.factory,
    ]

    /// A registry holding every standard stage kind.
    public static var registry: StageRegistry { StageRegistry(factories) }

    /// The standard way to read facts about files (libmagic, libvips, libcrypto).
    public static func inspector() -> LocalInspector { LocalInspector() }
}
