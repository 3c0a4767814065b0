#!/bin/sh
# Turns the SQL into C tables: the migrations (NNN_name.sql -> version NNN,
# with each file's SHA-256) and the files of functions, views and triggers
# applied again at every start.
# Usage: embed.sh MIGRATION... -- SOURCE...
set -eu
quote() {
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t "/' -e 's/$/\\n"/' "$1"
}
echo '/* generated from src/sql by embed.sh; do not edit */'
echo '#include "schema.h"'
echo 'const struct schema_file schema_migrations[] = {'
n=0
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	base=$(basename "$1" .sql)
	ver=$(echo "$base" | sed 's/^0*\([0-9][0-9]*\)_.*/\1/')
	sum=$(sha256sum "$1" | cut -d' ' -f1)
	printf '\t{%s, "%s", "%s",\n' "$ver" "$base" "$sum"
	quote "$1"
	printf '\t},\n'
	n=$((n + 1))
	shift
done
echo '};'
echo "const int schema_migration_count = $n;"
[ $# -gt 0 ] && shift
echo 'const struct schema_file schema_sources[] = {'
n=0
for f in "$@"; do
	printf '\t{0, "%s", NULL,\n' "$(basename "$f" .sql)"
	quote "$f"
	printf '\t},\n'
	n=$((n + 1))
done
echo '};'
echo "const int schema_source_count = $n;"
