#!/usr/bin/env bash
# make-fixtures.sh OUTDIR
#
# Builds the real files the media-pipeline tests run against: good inputs of
# every class, plus the bad inputs of /work/shared/bad-inputs.md (A1-A7,
# B1-B5, C1-C3). Every file made is listed in OUTDIR/MANIFEST.tsv as
# "name<TAB>description" (no header line); optional files that cannot be
# made on this machine are skipped with a note on stderr.
#
# Deterministic (seeded noise, fixed zip times, bit-exact ffmpeg, no dates)
# and fast (a few seconds). Needs vips, exiftool, ffmpeg, python3; heif-enc
# is optional. Binary construction lives in fixtures.py next to this script.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
# C3 needs a real Adobe RGB (1998) profile; fail early and say where to get one.
ADOBE_ICC=$(find /usr/share/color -iname '*AdobeRGB1998.icc' 2>/dev/null | sort | head -n 1 || true)
if [ -z "$ADOBE_ICC" ]; then
  echo "make-fixtures: no AdobeRGB1998.icc under /usr/share/color;" \
       "install the Debian package colord-data (or icc-profiles-free)" >&2
  exit 1
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fx() { python3 "$HERE/fixtures.py" "$@"; }

MANIFEST=$OUT/MANIFEST.tsv
: > "$MANIFEST"
made() { printf '%s\t%s\n' "$1" "$2" >> "$MANIFEST"; }
skipped() { echo "make-fixtures: skipped $1: $2" >&2; }

VIPS_OPS=$(vips -l)
has_op() { grep -q "($1)" <<< "$VIPS_OPS"; }

# The two slowest generators (B1: 400 MB of zeros to deflate; B3: 4 MP
# through a pure-Python LZW) run in the background while the rest is built;
# their manifest lines come at the end, so the manifest order is fixed.
fx png-bomb "$OUT/bomb-full.png" 20000 20000 20000 & BOMB_PID=$!
fx gif-frame-bomb "$OUT/frames.gif" 2000 500 & GIF_PID=$!

# ---------------------------------------------------------------- good files
# Metadata is written by one exiftool run near the end (exiftool starts slowly).

fx photo "$OUT/photo.jpg[Q=85]" 640 480 1 8
made photo.jpg "C1: 640x480 JPEG with EXIF Make/Model/Artist, GPS 48.8584N 2.2945E, XMP Creator, IPTC By-line"

# C2: left half red, right half blue, so a test can tell which way it turned.
# No chroma subsampling keeps the two colours clean up to the seam.
vips black "$TMP/half.v" 40 40 --bands 3
vips linear "$TMP/half.v" "$TMP/red.v" "0 0 0" "255 0 0" --uchar
vips linear "$TMP/half.v" "$TMP/blue.v" "0 0 0" "0 0 255" --uchar
vips join "$TMP/red.v" "$TMP/blue.v" "$OUT/rotated.jpg[Q=95,subsample-mode=off,strip]" horizontal
made rotated.jpg "C2: 80x40 JPEG (left red, right blue) with EXIF Orientation=6; upright it is 40x80"

# C3: the stored value (202,30,30) means a different colour in Adobe RGB.
# Q=100 without subsampling keeps the stored value exact. (No strip here:
# strip would also drop the profile.)
vips black "$TMP/flat.v" 64 64 --bands 3
vips linear "$TMP/flat.v" "$TMP/adobe.v" "0 0 0" "202 30 30" --uchar
vips copy "$TMP/adobe.v" "$OUT/adobe.jpg[Q=100,subsample-mode=off,profile=$ADOBE_ICC]"
made adobe.jpg "C3: 64x64 JPEG, stored pixel (202,30,30), Adobe RGB (1998) ICC profile embedded"

fx photo "$TMP/small.v" 100 80 3 0
vips grey "$TMP/alpha.v" 100 80 --uchar  # alpha ramp 0..255, left to right
vips bandjoin "$TMP/small.v $TMP/alpha.v" "$OUT/small.png"
made small.png "100x80 RGBA PNG (smaller than any resize target; must not be upscaled)"

# A smooth gradient: large in pixels, small on disk, quick to encode.
vips xyz "$TMP/xy.v" 3000 2000
vips linear "$TMP/xy.v" "$TMP/rg.v" "0.085 0.1275" "0 0" --uchar
vips bandjoin_const "$TMP/rg.v" "$OUT/big.png" 96
made big.png "3000x2000 RGB PNG gradient (over a 1600px resize target)"

fx photo "$OUT/photo.webp[Q=80]" 320 240 4 6
made photo.webp "320x240 WebP with EXIF (Make/Model/Artist, GPS) and XMP Creator"

# Documents: one Python start for all ('+' chains fixtures.py commands).
fx gif-anim "$OUT/anim.gif" \
   + pdf "$OUT/doc.pdf" + docx "$OUT/doc.docx" + xlsx "$OUT/sheet.xlsx" \
   + pptx "$OUT/slides.pptx" + epub "$OUT/book.epub" + odt "$OUT/text.odt" \
   + zip "$OUT/plain.zip" "readme.txt=first file"$'\n' "notes/todo.txt=second file"$'\n'
made anim.gif "animated GIF, 4 frames of 64x64 (a red square moving right)"
made doc.pdf "1-page PDF 1.4"
made doc.docx "minimal Word document (OOXML zip)"
made sheet.xlsx "minimal Excel workbook, one sheet (OOXML zip)"
made slides.pptx "minimal PowerPoint deck, one slide (OOXML zip)"
made book.epub "minimal EPUB 3 (stored mimetype first)"
made text.odt "minimal OpenDocument text (stored mimetype first)"
made plain.zip "ordinary zip with two text files (readme.txt, notes/todo.txt)"

cat > "$OUT/drawing.svg" <<'SVG'
<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80" viewBox="0 0 120 80">
  <rect x="10" y="10" width="100" height="60" rx="8" fill="#4272c4"/>
  <circle cx="60" cy="40" r="18" fill="#ed7d31"/>
</svg>
SVG
made drawing.svg "clean SVG: rect + circle, no script, no links, no DOCTYPE"
cat > "$OUT/data.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<course id="demo">
  <lesson n="1">Intro</lesson>
  <lesson n="2">Basics</lesson>
</course>
XML
made data.xml "plain XML that is not SVG"

fx video "$OUT/clip.mp4" 160x120 1 + video "$OUT/clip.webm" 160x120 1 \
   + tone "$OUT/sound.mp3" 1 + tone "$OUT/sound.wav" 1
made clip.mp4 "1 s 160x120 H.264 MP4 (testsrc, no audio)"
made clip.webm "1 s 160x120 VP8 WebM (testsrc, no audio)"
made sound.mp3 "1 s 440 Hz tone, MP3"
made sound.wav "1 s 440 Hz tone, 16-bit PCM WAV"

printf 'Course notes\n============\n\nPlain UTF-8 text: café, naïve.\n' > "$OUT/notes.txt"
made notes.txt "plain UTF-8 text"
printf 'lesson,title,minutes\n1,Intro,12\n2,Basics,25\n' > "$OUT/data.csv"
made data.csv "CSV text"

if command -v heif-enc > /dev/null; then
  vips thumbnail "$OUT/photo.jpg" "$TMP/heic-src.png" 128  # 128x96 from the (untagged) photo
  heif-enc -q 50 -o "$OUT/heic.heic" "$TMP/heic-src.png" > /dev/null
  made heic.heic "128x96 HEIC (HEVC still image)"
else
  skipped heic.heic "heif-enc not found (Debian package libheif-examples)"
fi

# ---------------------------------------------------------------- bad files

# A1: HTML behind an image extension.
printf '<html><script>alert(1)</script></html>' > "$OUT/lesson.png"
made lesson.png "A1: HTML with a script tag, named .png"

# A2: one real JPEG under tricky names (identical bytes on purpose).
vips thumbnail "$OUT/photo.jpg" "$TMP/base.jpg[Q=85,strip]" 96  # 96x72
for name in photo.jpg.php SHELL.PHP x.JpG; do
  cp "$TMP/base.jpg" "$OUT/$name"
  made "$name" "A2: real 96x72 JPEG under a double/case-game extension"
done

# A5: JPEG + appended zip; the <script> comment is added by exiftool below
# (exiftool keeps the trailing zip).
fx zip "$TMP/payload.zip" "h.txt=hidden payload"$'\n'
cat "$TMP/base.jpg" "$TMP/payload.zip" > "$OUT/poly.jpg"
made poly.jpg "A5: polyglot: valid JPEG + appended zip (h.txt) + script tag in the JPEG comment"

# A6: active or dangerous SVG content.
cat > "$OUT/script.svg" <<'SVG'
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script><rect width="10" height="10"/></svg>
SVG
made script.svg "A6: SVG with a script element"
cat > "$OUT/onload.svg" <<'SVG'
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="alert(1)"><rect width="10" height="10"/></svg>
SVG
made onload.svg "A6: SVG with an onload= event attribute"
cat > "$OUT/foreign.svg" <<'SVG'
<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><foreignObject width="100" height="50"><div xmlns="http://www.w3.org/1999/xhtml"><iframe src="http://example.com/"></iframe></div></foreignObject></svg>
SVG
made foreign.svg "A6: SVG with a foreignObject element holding XHTML"
cat > "$OUT/href.svg" <<'SVG'
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><image href="http://example.com/x.png" xlink:href="http://example.com/x.png" width="10" height="10"/></svg>
SVG
made href.svg "A6: SVG with an external href (http://example.com/x.png)"
cat > "$OUT/xxe.svg" <<'SVG'
<?xml version="1.0"?>
<!DOCTYPE svg [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<svg xmlns="http://www.w3.org/2000/svg" width="200" height="20"><text y="15">&xxe;</text></svg>
SVG
made xxe.svg "A6: SVG whose DOCTYPE declares an external entity (file:///etc/passwd)"
{ # billion laughs: lol1..lol9 are each 10 references to the previous entity
  echo '<?xml version="1.0"?>'
  echo '<!DOCTYPE svg ['
  echo ' <!ENTITY lol0 "lol">'
  for i in 1 2 3 4 5 6 7 8 9; do
    printf ' <!ENTITY lol%d "' "$i"
    for _ in 1 2 3 4 5 6 7 8 9 10; do printf '&lol%d;' $((i - 1)); done
    printf '">\n'
  done
  echo ']>'
  echo '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&lol9;</text></svg>'
} > "$OUT/laughs.svg"
made laughs.svg "A6: SVG billion laughs (10 nested entities x 10 references, 10^9 expansions)"

# A7: formats only untrusted libvips loaders read, all named .jpg.
printf 'P6\n4 4\n255\n' > "$OUT/ppm.jpg"
head -c 48 /dev/zero >> "$OUT/ppm.jpg"
made ppm.jpg "A7: binary PPM (P6 4x4) named .jpg"
vips black "$TMP/a7.v" 8 8 --bands 3
vips cast "$TMP/a7.v" "$TMP/a7f.v" float
vips extract_band "$TMP/a7.v" "$TMP/a7g.v" 0
# a7 NAME SAVER EXT SOURCE DESCRIPTION [SAVER OPTIONS...]: save with SAVER
# if this libvips has it (and it works), else skip.
a7() {
  local name=$1 saver=$2 ext=$3 src=$4 what=$5
  shift 5
  : > "$TMP/a7.err"
  if has_op "$saver" && vips "$saver" "$src" "$TMP/a7-out.$ext" "$@" 2> "$TMP/a7.err"; then
    mv "$TMP/a7-out.$ext" "$OUT/$name"
    made "$name" "A7: $what named .jpg"
  else
    skipped "$name" "no working $saver in this libvips ($(head -n 1 "$TMP/a7.err"))"
  fi
}
# --strip: otherwise the PFM header carries a dated comment.
a7 pfm.jpg ppmsave pfm "$TMP/a7f.v" "PFM (float portable map)" --format pfm --strip
a7 fits.jpg fitssave fits "$TMP/a7.v" "FITS"
a7 hdr.jpg radsave hdr "$TMP/a7.v" "Radiance HDR"
a7 vips.jpg vipssave v "$TMP/a7.v" "libvips native .v"
a7 csv.jpg csvsave csv "$TMP/a7g.v" "libvips CSV matrix (tab separated)"
a7 jp2.jpg jp2ksave jp2 "$TMP/a7.v" "JPEG 2000 (JP2)"
a7 jxl.jpg jxlsave jxl "$TMP/a7.v" "JPEG XL codestream"
# Written by hand: matrixsave in 8.14 omits "scale offset" from the header
# and then its own matrixload does not recognise the file.
printf '4 3 1 0\n1 0 0 0\n0 1 0 0\n0 0 1 0\n' > "$OUT/matrix.jpg"
made matrix.jpg "A7: libvips text matrix (4x3, header with scale/offset) named .jpg"
skipped mat.jpg "libvips has no MATLAB saver (matload is load-only)"

# B2: header-only bomb: 60000x60000 declared, 4 rows of data.
# Also two PDFs named .jpg (A7 and a type-mismatch case; different bytes).
fx png-bomb "$OUT/bomb-header.png" 60000 60000 4 \
   + pdf "$OUT/pdf.jpg" $'A7 sample\nA PDF named .jpg.' \
   + pdf "$OUT/really-a-pdf.jpg" $'Not a photo\nThis PDF is named .jpg (type mismatch).'
made bomb-header.png "B2: PNG header says 60000x60000 greyscale, IDAT holds only 4 rows"
made pdf.jpg "A7: 1-page PDF named .jpg"
made really-a-pdf.jpg "1-page PDF named .jpg (type_mismatch)"

# B5: cut real, noisy (hard to compress) files in half.
fx photo "$TMP/noisy.jpg[Q=92]" 480 360 7 40
head -c $(( $(stat -c %s "$TMP/noisy.jpg") / 2 )) "$TMP/noisy.jpg" > "$OUT/truncated.jpg"
made truncated.jpg "B5: first half of a noisy 480x360 JPEG"
fx photo "$TMP/noisy.png" 200 150 8 30
head -c $(( $(stat -c %s "$TMP/noisy.png") / 2 )) "$TMP/noisy.png" > "$OUT/truncated.png"
made truncated.png "B5: first half of a noisy 200x150 PNG"

: > "$OUT/empty.jpg"
made empty.jpg "zero bytes, named .jpg"

# ---------------------------------------------------------------- metadata
# One exiftool run; -execute starts the next file's command. The first one
# drops the EXIF chunk vips 8.14 puts in WebP even with strip (its
# "Exif\0\0" prefix makes exiftool warn), so a standard one is written.
exiftool -q -q -EXIF:all= "$OUT/photo.webp" \
  -execute \
    -Make=Canon -Model='Canon EOS 5D Mark IV' -Artist='Jane Photographer' \
    -DateTimeOriginal='2024:05:01 10:00:00' \
    -GPSLatitude=48.8584 -GPSLatitudeRef=N -GPSLongitude=2.2945 -GPSLongitudeRef=E \
    -XMP:Creator='Jane Photographer' -IPTC:By-line='Jane Photographer' "$OUT/photo.jpg" \
  -execute -Orientation#=6 "$OUT/rotated.jpg" \
  -execute -Make=Canon -Model='Canon EOS R6' -Artist='Jane Photographer' \
    -GPSLatitude=48.8584 -GPSLatitudeRef=N -GPSLongitude=2.2945 -GPSLongitudeRef=E \
    -XMP:Creator='Jane Photographer' "$OUT/photo.webp" \
  -execute -Comment='<script>alert(1)</script>' "$OUT/poly.jpg" \
  -common_args -q -overwrite_original

wait "$BOMB_PID"
made bomb-full.png "B1: valid 20000x20000 greyscale PNG, all zeros (400 MP in ~390 KB)"
wait "$GIF_PID"
made frames.gif "B3: GIF, 2000x2000 first frame + 499 one-pixel frames (n-pages=500)"

echo "make-fixtures: $(wc -l < "$MANIFEST") files in $OUT"
