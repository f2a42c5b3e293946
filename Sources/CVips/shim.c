#include "mp_vips.h"
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

// libvips reports decoder trouble as GLib warnings on stderr; the tool reports failures itself.
static void drop_warning(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data) {
    (void)domain; (void)level; (void)message; (void)data;
}

int mp_vips_init(const char *argv0, int concurrency) {
    if (VIPS_INIT(argv0 ? argv0 : "media-pipeline")) return -1;
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, drop_warning, NULL);
    vips_block_untrusted_set(TRUE);
    vips_cache_set_max(0);
    if (concurrency > 0) vips_concurrency_set(concurrency);
    return 0;
}

void mp_vips_take_error(char *buf, size_t size) {
    if (size == 0) return;
    const char *text = vips_error_buffer();
    strncpy(buf, text ? text : "", size - 1);
    buf[size - 1] = '\0';
    vips_error_clear();
}

int mp_vips_header(const char *path, mp_header *out) {
    memset(out, 0, sizeof *out);
    VipsSource *source = vips_source_new_from_file(path);
    if (!source) return -1;
    VipsImage *image = vips_image_new_from_source(source, "", "access", VIPS_ACCESS_SEQUENTIAL, NULL);
    g_object_unref(source);
    if (!image) return -1;
    out->width = vips_image_get_width(image);
    out->height = vips_image_get_page_height(image);
    out->pages = vips_image_get_n_pages(image);
    out->bands = vips_image_get_bands(image);
    out->has_alpha = vips_image_hasalpha(image);
    out->orientation = vips_image_get_orientation(image);
    out->has_icc = vips_image_get_typeof(image, VIPS_META_ICC_NAME) != 0;
    const char *loader = NULL;
    if (!vips_image_get_string(image, VIPS_META_LOADER, &loader) && loader) {
        strncpy(out->loader, loader, sizeof out->loader - 1);
    }
    g_object_unref(image);
    return 0;
}

// Fields that describe pixels or animation rather than the picture's origin:
// everything else (EXIF, XMP, IPTC, comments, thumbnails, GPS) is removed.
static int keep_field(const char *name, int keep_icc) {
    static const char *const keep[] = {"page-height", "n-pages", "delay", "loop", "gif-delay",
                                       "gif-loop", "background", "gif-palette", NULL};
    for (int i = 0; keep[i]; i++)
        if (strcmp(name, keep[i]) == 0) return 1;
    return keep_icc && strcmp(name, VIPS_META_ICC_NAME) == 0;
}

typedef struct {
    char **names;
    int count;
    int capacity;
} name_list;

static void *collect_name(VipsImage *image, const char *name, GValue *value, void *data) {
    (void)image; (void)value;
    name_list *list = data;
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? list->capacity * 2 : 32;
        list->names = g_renew(char *, list->names, list->capacity);
    }
    list->names[list->count++] = g_strdup(name);
    return NULL;
}

// libvips 8.14 ignores `strip` for WebP and its `strip` also drops the ICC
// profile, so metadata is removed field by field before every save.
static void remove_metadata(VipsImage *image, int keep_icc) {
    name_list list = {0};
    vips_image_map(image, collect_name, &list);
    for (int i = 0; i < list.count; i++) {
        if (!keep_field(list.names[i], keep_icc)) vips_image_remove(image, list.names[i]);
        g_free(list.names[i]);
    }
    g_free(list.names);
}

static int save(VipsImage *image, const char *path, const mp_transform *t) {
    gboolean strip = t->strip && !t->keep_icc;
    switch (t->format) {
    case MP_FORMAT_JPEG:
        return vips_jpegsave(image, path, "Q", t->quality, "strip", strip, NULL);
    case MP_FORMAT_PNG:
        return vips_pngsave(image, path, "compression", 6, "strip", strip, NULL);
    case MP_FORMAT_WEBP:
        return vips_webpsave(image, path, "Q", t->quality, "strip", strip, NULL);
    case MP_FORMAT_GIF:
        return vips_gifsave(image, path, "strip", strip, NULL);
    }
    vips_error("media-pipeline", "unknown output format %d", (int)t->format);
    return -1;
}

int mp_vips_transform(const char *in_path, const char *out_path, const mp_transform *t,
                      mp_transform_result *result) {
    memset(result, 0, sizeof *result);
    VipsSource *source = vips_source_new_from_file(in_path);
    if (!source) return -1;
    // The loader's own options: thumbnail_source does not hand fail_on to the loader itself.
    char options[64];
    snprintf(options, sizeof options, "%sfail_on=%s", t->all_pages ? "n=-1," : "",
             t->fail_on_truncated ? "truncated" : "none");
    // Colour management only where there is colour to manage: an embedded profile or CMYK.
    // An untagged RGB or grey image is sRGB already, and building an sRGB-to-sRGB transform
    // costs far more than the rest of a small image's work (measured in bench/README.md).
    int manage = 1;
    VipsImage *header = vips_image_new_from_source(source, options, NULL);
    if (header) {
        manage = vips_image_get_typeof(header, VIPS_META_ICC_NAME) != 0
              || vips_image_get_interpretation(header) == VIPS_INTERPRETATION_CMYK;
        g_object_unref(header);
    } else {
        vips_error_clear();
    }
    VipsImage *thumb = NULL;
    int status = vips_thumbnail_source(source, &thumb, t->width,
        "height", t->height,
        "size", VIPS_SIZE_DOWN,
        "crop", t->cover ? VIPS_INTERESTING_CENTRE : VIPS_INTERESTING_NONE,
        "no_rotate", t->autorotate ? FALSE : TRUE,
        "export_profile", manage ? "srgb" : NULL,
        "fail_on", t->fail_on_truncated ? VIPS_FAIL_ON_TRUNCATED : VIPS_FAIL_ON_NONE,
        "option_string", options,
        NULL);
    g_object_unref(source);
    if (status) return -1;

    // Metadata is edited on a private copy: the thumbnail's header may be shared.
    VipsImage *clean = NULL;
    if (vips_copy(thumb, &clean, NULL)) {
        g_object_unref(thumb);
        return -1;
    }
    g_object_unref(thumb);
    if (t->strip) remove_metadata(clean, t->keep_icc);
    status = save(clean, out_path, t);
    if (!status) {
        result->width = vips_image_get_width(clean);
        result->height = vips_image_get_page_height(clean);
        result->pages = vips_image_get_n_pages(clean);
    }
    g_object_unref(clean);
    // A big decode leaves freed pages inside glibc's arenas; hand them back so a long batch's
    // resident size follows the current file, not the largest one seen so far.
    malloc_trim(0);
    return status;
}

int mp_vips_find_loader(const char *path, char *name, size_t size, int *blocked) {
    *blocked = 0;
    if (size) name[0] = '\0';
    VipsSource *source = vips_source_new_from_file(path);
    if (!source) return -1;
    const char *loader = vips_foreign_find_load_source(source);
    g_object_unref(source);
    if (!loader) return -1;
    if (size) {
        strncpy(name, loader, size - 1);
        name[size - 1] = '\0';
    }
    GType type = vips_type_find("VipsOperation", loader);
    if (type) {
        VipsOperationClass *class = VIPS_OPERATION_CLASS(g_type_class_ref(type));
        *blocked = (class->flags & VIPS_OPERATION_BLOCKED) != 0;
        g_type_class_unref(class);
    }
    return 0;
}

typedef struct {
    char *buf;
    size_t size;
    size_t used;
} text_out;

static void *note_untrusted(GType type, void *data) {
    text_out *out = data;
    if (G_TYPE_IS_ABSTRACT(type)) return NULL;  // never run, so never blocked either
    VipsOperationClass *class = VIPS_OPERATION_CLASS(g_type_class_ref(type));
    VipsOperationFlags flags = class->flags;
    const char *nickname = VIPS_OBJECT_CLASS(class)->nickname;
    g_type_class_unref(class);
    if (!(flags & VIPS_OPERATION_UNTRUSTED) || !nickname) return NULL;
    int n = snprintf(out->buf + out->used, out->size - out->used, "%s%s%s", out->used ? "," : "",
                     nickname, (flags & VIPS_OPERATION_BLOCKED) ? "" : "!");
    if (n > 0 && out->used + (size_t)n < out->size) out->used += (size_t)n;
    return NULL;
}

void mp_vips_untrusted_operations(char *buf, size_t size) {
    if (size == 0) return;
    buf[0] = '\0';
    text_out out = {buf, size, 0};
    vips_type_map_all(g_type_from_name("VipsOperation"), note_untrusted, &out);
}
