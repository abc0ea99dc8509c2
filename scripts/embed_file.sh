#!/bin/sh
# embed_file.sh NAME FILE — prints a C file defining `const char NAME[]` (FILE's bytes plus a
# terminating NUL) and `const size_t NAME_len` (the byte count without the NUL).
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 NAME FILE" >&2
    exit 2
fi
name=$1
file=$2
echo "/* ${name}.c — the bytes of $(basename "$file"), embedded by scripts/embed_file.sh. */"
echo '#include <stddef.h>'
echo "const char ${name}[] = {"
od -An -v -tx1 "$file" | sed -e 's/  */ /g' -e 's/^ //' -e '/^$/d' \
    -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/    /'
echo '    0x00};'
echo "const size_t ${name}_len = sizeof ${name} - 1;"
