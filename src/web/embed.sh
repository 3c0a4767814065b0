#!/bin/sh
# Turns the console's files into a C table, as embed.sh does the SQL: each
# file's bytes, its media type, and an ETag made from its SHA-256.
# Usage: embed.sh FILE...
set -eu
echo '/* generated from src/web by embed.sh; do not edit */'
echo '#include "console.h"'
n=0
for f in "$@"; do
	printf 'static const unsigned char file%d[] = {\n' "$n"
	od -An -v -tu1 "$f" | sed -e 's/^ *//' -e 's/  */,/g' -e 's/$/,/' -e '/^,$/d'
	printf '0};\n'
	n=$((n + 1))
done
echo 'const struct console_file console_files[] = {'
n=0
for f in "$@"; do
	name=$(basename "$f")
	case "$name" in
	*.html) type='text/html; charset=utf-8' ;;
	*.css) type='text/css; charset=utf-8' ;;
	*.js) type='text/javascript; charset=utf-8' ;;
	*.json) type='application/json' ;;
	*) echo "embed.sh: no media type for $name" >&2; exit 1 ;;
	esac
	sum=$(sha256sum "$f" | cut -c1-32)
	size=$(wc -c < "$f")
	printf '\t{"%s", "%s", "\\"%s\\"", file%d, %d},\n' "$name" "$type" "$sum" "$n" "$size"
	n=$((n + 1))
done
printf '\t{NULL, NULL, NULL, NULL, 0},\n'
echo '};'
