#!/usr/bin/env bash
# make-course.sh OUTDIR
#
# Builds the bundled example course, as the folder OUTDIR and as the archive OUTDIR.zip
# (the way courses usually arrive): a small, realistic course folder with
# photos that carry private metadata and EXIF rotation, documents, a video
# and one bad file, laid out so path rules can pick purposes (covers,
# thumbnails, avatars, lesson files, attachments). Deterministic, < 2 MB,
# a few seconds. Needs vips, exiftool, ffmpeg, python3. The file builders
# are shared with the test fixtures (Tests/Fixtures/fixtures.py).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURES=$HERE/../Tests/Fixtures/fixtures.py
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
cd "$OUT"
mkdir -p images/thumbnails avatars lessons/01-intro lessons/02-basics videos attachments bad

fx() { python3 "$FIXTURES" "$@"; }

# Photos: one Python start for all four ('+' chains commands); low grain for the PNG.
fx photo 'images/cover.jpg[Q=82]' 1200 800 11 6 \
   + photo 'images/thumbnails/lesson-01.jpg[Q=82]' 800 600 12 6 \
   + photo images/thumbnails/lesson-02.png 320 240 13 0 \
   + photo 'avatars/instructor.jpg[Q=82]' 600 800 14 6

# Private metadata and rotation flags the pipeline must handle (strip / rotate).
exiftool \
    -Make=FUJIFILM -Model=X-T4 -Orientation#=6 \
    -GPSLatitude=38.7071 -GPSLatitudeRef=N -GPSLongitude=9.1355 -GPSLongitudeRef=W \
    images/cover.jpg \
  -execute \
    -GPSLatitude=38.7139 -GPSLatitudeRef=N -GPSLongitude=9.1334 -GPSLongitudeRef=W \
    -XMP:Creator='Ana Instructor' images/thumbnails/lesson-01.jpg \
  -execute -Make=Apple -Model='iPhone 13' -Orientation#=8 avatars/instructor.jpg \
  -common_args -q -overwrite_original

# Documents, the diagram and the video.
fx pdf lessons/01-intro/slides.pdf \
       $'Welcome to Photography Basics\nWhat this course covers\nHow the lessons are organised\nWhat you need: any camera' \
       $'Light\nAperture controls depth of field\nShutter speed controls motion blur\nISO trades noise for brightness' \
       $'Composition\nRule of thirds\nLeading lines\nFraming and negative space' \
       $'Next steps\nRead lessons/02-basics/reading.txt\nShoot ten photos of one subject' \
   + docx lessons/01-intro/handout.docx 'Lesson 1 handout' \
       'Bring a camera or a phone to the next session.' \
       'Exercise: take three photos of the same subject with different light.' \
   + pdf attachments/notes.pdf $'Course notes\nExposure triangle: aperture, shutter speed, ISO.\nKeep a notebook of settings.' \
   + diagram attachments/diagram.png \
   + video videos/01-intro.mp4 320x240 2 audio

cat > lessons/02-basics/reading.txt <<'TXT'
Lesson 2 reading: the basics

1. Hold the camera steady; brace your elbows.
2. Focus on the eyes when photographing people.
3. Check the histogram, not the screen brightness.
TXT

# The one bad file: HTML saved under an image name (must be rejected).
printf '<html><body><script>alert("not an image")</script></body></html>\n' > bad/not-really.png

cat > course.json <<'JSON'
{
  "id": "photography-basics",
  "title": "Photography Basics",
  "language": "en",
  "instructor": { "name": "Ana Instructor", "avatar": "avatars/instructor.jpg" },
  "cover": "images/cover.jpg",
  "lessons": [
    {
      "id": "01-intro",
      "title": "Introduction",
      "thumbnail": "images/thumbnails/lesson-01.jpg",
      "video": "videos/01-intro.mp4",
      "files": ["lessons/01-intro/slides.pdf", "lessons/01-intro/handout.docx"]
    },
    {
      "id": "02-basics",
      "title": "The basics",
      "thumbnail": "images/thumbnails/lesson-02.png",
      "files": ["lessons/02-basics/reading.txt"]
    }
  ],
  "attachments": ["attachments/diagram.png", "attachments/notes.pdf"]
}
JSON

# The same course as one archive, entries in name order with fixed times, so it is byte-for-byte
# the same on every machine.
python3 - "$OUT" "$OUT.zip" <<'PY'
import os, sys, zipfile
root, target = sys.argv[1], sys.argv[2]
names = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
with zipfile.ZipFile(target + ".part", "w", zipfile.ZIP_DEFLATED) as z:
    for name in names:
        info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with open(os.path.join(root, name), "rb") as f:
            z.writestr(info, f.read())
os.replace(target + ".part", target)
PY

echo "make-course: $(find . -type f | wc -l) files, $(du -sk . | cut -f1) KB in $OUT and $OUT.zip"
