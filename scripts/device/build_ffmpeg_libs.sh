#!/usr/bin/env bash
# Builds the FFmpeg libraries the lent GPU machine lacks into .devcarry/lib (git-ignored; carried with the binaries),
# so that a TD_FFMPEG=ON build writes real MP4s there. Debian's own libav* pull in ~130 libraries (160 MiB); this
# build has only what turbodiff uses: libx264 and mpeg4 encoders, h264/mpeg4 decoders, the mp4/mov muxer and mov
# demuxer, the file protocol and swscale (6 MiB with Debian's libx264). Same upstream version and sonames as Debian
# 12's packages, so binaries linked here against libavcodec59 etc. load it. Needs libx264-dev and nasm
# (`apt-get install libx264-dev nasm`). Usage: scripts/device/build_ffmpeg_libs.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/td_ffmpeg}"
ver=$(dpkg-query -W -f='${Version}' libavcodec59 2>/dev/null | sed -E 's/^[0-9]+://; s/-.*//')
[ -n "$ver" ] || { echo "build_ffmpeg_libs: libavcodec59 is not installed; install Debian 12's FFmpeg dev packages" >&2; exit 1; }
mkdir -p "$work" && cd "$work"
[ -f "ffmpeg_$ver.orig.tar.xz" ] || curl -sSfLO "http://deb.debian.org/debian/pool/main/f/ffmpeg/ffmpeg_$ver.orig.tar.xz"
rm -rf "ffmpeg-$ver" && tar xf "ffmpeg_$ver.orig.tar.xz" && cd "ffmpeg-$ver"
./configure --prefix="$work/inst" --enable-shared --disable-static --disable-programs --disable-doc \
  --disable-everything --enable-gpl --enable-libx264 --enable-encoder=libx264,mpeg4 --enable-decoder=h264,mpeg4 \
  --enable-muxer=mp4,mov --enable-demuxer=mov --enable-parser=h264,mpeg4video --enable-protocol=file \
  --enable-swscale --disable-avdevice --disable-avfilter --disable-postproc --disable-network --disable-autodetect \
  --enable-pthreads > "$work/configure.log"
make -j"$(nproc)" > "$work/make.log" 2>&1 && make install > "$work/install.log" 2>&1
mkdir -p "$root/.devcarry/lib"
for f in libavcodec.so.59 libavformat.so.59 libavutil.so.57 libswscale.so.6 libswresample.so.4; do
  cp -L "$work/inst/lib/$f" "$root/.devcarry/lib/"
done
cp -L /usr/lib/x86_64-linux-gnu/libx264.so.164 "$root/.devcarry/lib/"
du -sh "$root/.devcarry/lib"
