#!/usr/bin/env bash
# make-inputs.sh: writes the small input files of the example cases (each case's input/ folder).
#
# The files are committed, so `media-pipeline test examples/cases` needs neither this script nor
# the network; run it again only to change them. Needs vips, ffmpeg and python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

jpeg() { mkdir -p "$(dirname "$1")"; vips gaussnoise "$1[Q=80,strip]" "$2" "$3" --seed 7; }
png() { mkdir -p "$(dirname "$1")"; vips gaussnoise "$1[strip]" "$2" "$3" --seed 11; }
# The PDF builder is the test fixtures' own.
pdf() { mkdir -p "$(dirname "$1")"; python3 ../../Tests/Fixtures/fixtures.py pdf "$1" "$2"; }

jpeg thumbnail-to-images/input/lessons/01/thumbnails/cover.jpg 96 64
png avatar-to-images/input/users/42/avatars/me.png 48 48
pdf material-pdf-to-r2/input/course/syllabus.pdf "Syllabus"
pdf lesson-resource-to-r2/input/course/lessons/03/worksheet.pdf "Worksheet"
mkdir -p lesson-video-to-stream/input/course/videos
ffmpeg -v error -y -f lavfi -i color=c=blue:s=64x64:d=1:r=5 -c:v libx264 -pix_fmt yuv420p -preset ultrafast \
  -fflags +bitexact -flags:v +bitexact -map_metadata -1 -movflags +faststart lesson-video-to-stream/input/course/videos/intro.mp4
# A PNG named .pdf: refused for the mismatch between name and content.
png type-mismatch-rejected/input/course/handout.pdf.png 16 16
mv type-mismatch-rejected/input/course/handout.pdf.png type-mismatch-rejected/input/course/handout.pdf
mkdir -p empty-file-rejected/input/course && : > empty-file-rejected/input/course/empty.jpg
png image-to-r2-without-images/input/lessons/02/diagram.png 40 30
jpeg purpose-given-by-case/input/upload/photo.jpg 64 64
