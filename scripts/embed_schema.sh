#!/bin/sh
# embed_schema.sh — prints a C file holding the SQL migrations given as arguments, in order.
# Each file is schema/NNN_name.sql; the store applies migration i to reach user_version i+1.
set -eu
echo '/* schema_sql.c — generated from the schema/ migrations by scripts/embed_schema.sh; do not edit. */'
echo '#include <stddef.h>'
echo 'const char *const schema_migration_names[] = {'
for f in "$@"; do echo "    \"$(basename "$f")\","; done
echo '    NULL};'
echo 'const char *const schema_migration_sql[] = {'
for f in "$@"; do
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$f"
    echo '    ,'
done
echo '    NULL};'
echo "const int schema_migration_count = $#;"
