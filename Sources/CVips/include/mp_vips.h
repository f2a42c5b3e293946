// The one door to libvips. Swift cannot call variadic C functions, so every
// libvips call with optional arguments is wrapped here with fixed arguments.
// Each wrapper names the libvips function it hides.
#ifndef MP_VIPS_H
#define MP_VIPS_H

#include <stddef.h>

/// Starts libvips once per process (VIPS_INIT), blocks every loader and saver
/// libvips flags as untrusted (vips_block_untrusted_set) and turns off the
/// operation cache so memory stays flat over long batches. Returns 0 on success.
int mp_vips_init(const char *argv0, int concurrency);

/// Copies libvips' error text into buf (NUL-terminated) and clears it.
void mp_vips_take_error(char *buf, size_t size);

/// What the header of an image says, read without decoding pixels.
typedef struct {
    int width;          // of one page
    int height;         // of one page
    int pages;          // n-pages, 1 for still images
    int bands;
    int has_alpha;
    int orientation;    // EXIF orientation 1..8, 1 when absent
    int has_icc;
    char loader[64];    // libvips loader nickname, e.g. "jpegload_source"
} mp_header;

/// vips_image_new_from_source with the header only. Returns 0 on success.
int mp_vips_header(const char *path, mp_header *out);

typedef enum { MP_FORMAT_JPEG = 0, MP_FORMAT_PNG = 1, MP_FORMAT_WEBP = 2, MP_FORMAT_GIF = 3 } mp_format;

typedef struct {
    int width;              // target box; the image is never upscaled
    int height;
    int cover;              // 1 = fill the box and crop (vips_thumbnail crop=centre)
    int autorotate;         // 1 = apply EXIF orientation
    int all_pages;          // 1 = keep every page/frame of an animation
    int keep_icc;           // 1 = keep an sRGB ICC profile, drop every other field
    int fail_on_truncated;  // 1 = fail-on=truncated (else warnings are tolerated)
    int strip;              // 1 = remove EXIF, XMP, IPTC, GPS, comments
    mp_format format;
    int quality;
} mp_transform;

typedef struct {
    int width;
    int height;
    int pages;
} mp_transform_result;

/// vips_thumbnail_source + converting to sRGB + removing metadata + the
/// format's saver (vips_jpegsave / vips_pngsave / vips_webpsave / vips_gifsave).
/// Writes `out_path` only; the caller renames it into place. Returns 0 on success.
int mp_vips_transform(const char *in_path, const char *out_path, const mp_transform *t,
                      mp_transform_result *result);

/// The loader libvips would use for a file (vips_foreign_find_load_source), and whether that
/// loader is blocked. Decided from the file's first bytes, never from libvips' shared error text.
/// Returns 0 when a loader was found.
int mp_vips_find_loader(const char *path, char *name, size_t size, int *blocked);

/// Writes the nicknames of every operation libvips flags as untrusted, comma
/// separated, with a '!' after the ones that are not blocked right now.
void mp_vips_untrusted_operations(char *buf, size_t size);

#endif
