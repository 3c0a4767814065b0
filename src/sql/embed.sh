#!/bin/sh
# Turns the numbered migration files into a C table: NNN_name.sql -> version NNN.
set -eu
echo '/* generated from the migrations in src/sql by embed.sh; do not edit */'
echo '#include "schema.h"'
echo 'const struct schema_migration schema_migrations[] = {'
for f in "$@"; do
	base=$(basename "$f" .sql)
	ver=$(echo "$base" | sed 's/^0*\([0-9][0-9]*\)_.*/\1/')
	printf '\t{%s, "%s",\n' "$ver" "$base"
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/\t "/' -e 's/$/\\n"/' "$f"
	printf '\t},\n'
done
echo '};'
echo "const int schema_migration_count = $#;"
