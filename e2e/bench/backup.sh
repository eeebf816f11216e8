#!/usr/bin/env bash
# Backup/restore benchmark (not a test): on each server of SERVERS (default `mariadb mysql97`: MariaDB
# 10.11 from the host, then MySQL 9.7.4 from the Debian unstable root filesystem of the real tier),
# one source with >= 1 GB of sysbench tables plus an every-type table, one MinIO, and end-to-end runs of
#   backup:  ours (db -> zstd -> S3 multipart, streaming) | mydumper to a local dir + `aws s3 cp`
#            | the server's dump tool (mariadb-dump or 9.7's mysqldump) --single-transaction | zstd
#              | `aws s3 cp -` | floor: parallel SELECT INTO OUTFILE
#   restore: ours (S3 -> server) | the server's client (mariadb or 9.7's mysql) < dump.sql
#            | myloader from the local dir | floor: parallel LOAD DATA INFILE
# each measured with GNU time (wall, peak RSS of the largest process, user+sys CPU).
# Usage: e2e/bench/backup.sh [TABLES] [ROWS_PER_TABLE]   (default 6 x 1,000,000 = ~1.2 GB)
# SERVERS="mysql97" (or SERVER=mysql97) runs one server only. The 9.7 servers run as a member's
# mysqld would (GTIDs on, binary log on, the group's InnoDB settings); their files live under the
# bench directory, bind-mounted at /mnt of the root filesystem in a private mount namespace, so
# nothing is written into the root filesystem (the node's images are built from it).
# REUSE=1 keeps the servers' data from the previous run instead of preparing it again: it stays
# in $IOP_CACHE/bench-backup-<server> (~19 GB each at the default size; delete it when done).
# BASELINES=0 measures ours only (the ratio column then needs an earlier run's numbers).
# REPEAT (default 3) is how many times each backup runs; the restores run once.
# SRC_PORT, DST_PORT and S3_PORT (default 23306, 23307, 29000) let two runs share a machine.
# TLS=1 serves the bucket over HTTPS (a private CA made with openssl) to every tool, as real S3
# is. Over HTTPS neither client hashes the payload for the signature: ours sends UNSIGNED-PAYLOAD
# with a CRC32C per part, the AWS CLI STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32 trailer.
# Ours runs twice in every round, side by side: `ours` over TLS to the server (as a backup Job:
# the server's certificate verified against a private CA and its name) and `ours-cleartext`
# (--mysql-cleartext); the last lines give the cost of TLS (ours / ours-cleartext). The other
# tools reach the server without TLS (the host's mariadb client library negotiates TLS with 9.7).
# Ours is the release build (Cargo.toml [profile.release]: opt-level 3 everywhere, thin LTO), or
# IOP_BIN. The machine's load average is recorded with every measurement: on a shared machine
# compare CPU seconds first, wall time second.
set -euo pipefail
cd "$(dirname "$0")/../.."
source e2e/lib/common.sh
if [ -z "${SERVER:-}" ]; then
  # One run per server, one after the other, each with its own data; then both tables again.
  start=$SECONDS
  for server in ${SERVERS:-mariadb mysql97}; do SERVER=$server "$0" "$@"; done
  echo; echo "== every server ($((SECONDS - start)) s)"
  for server in ${SERVERS:-mariadb mysql97}; do cat "$IOP_CACHE/bench-backup-$server/results/summary.md"; done
  exit 0
fi
TABLES=${1:-6}
ROWS=${2:-1000000}
WORKERS=${WORKERS:-4}
BENCH=${BENCH_DIR:-$IOP_CACHE/bench-backup-$SERVER}
BIN=${IOP_BIN:-$CARGO_TARGET_DIR/release/innodb-operator}
ROOTFS=$IOP_CACHE/mysql97/rootfs

e2e/lib/install-mariadb.sh --bench >/dev/null
[ "$SERVER" = mariadb ] || e2e/lib/install-mysql97.sh >/dev/null
e2e/lib/install-s3.sh >/dev/null
command -v aws >/dev/null || python3 -m pip install -q awscli

REUSE=${REUSE:-0}
BASELINES=${BASELINES:-1}
REPEAT=${REPEAT:-3}
[ -d "$BENCH/src/data" ] || REUSE=0
if [ "$REUSE" = 1 ]; then
  rm -rf "$BENCH"/{s3,s3tls,certs,dbcerts,stage,outfile,results}
else
  rm -rf "$BENCH"
fi
mkdir -p "$BENCH"/{src,dst,s3,stage,outfile,results,dbcerts}
chmod 777 "$BENCH/outfile"
chown 999:999 "$BENCH"/{src,dst}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The servers' certificate (for the name bench-db) and the CA ours verifies it with.
db_certs=$BENCH/dbcerts
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-db-ca \
  -keyout "$db_certs/ca.key" -out "$db_certs/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-db \
  -keyout "$db_certs/server.key" -out "$db_certs/server.csr" 2>/dev/null
openssl x509 -req -in "$db_certs/server.csr" -CA "$db_certs/ca.crt" -CAkey "$db_certs/ca.key" \
  -CAcreateserial -days 2 -extfile <(printf 'subjectAltName=DNS:bench-db\nbasicConstraints=CA:FALSE\n') \
  -out "$db_certs/server.crt" 2>/dev/null
chmod 644 "$db_certs"/*  # the 9.7 servers run as 999
OURS_TLS="--mysql-ca-file $db_certs/ca.crt --mysql-tls-name bench-db"

# Where the servers see the bench directory: the host path for MariaDB, /mnt for 9.7.
case $SERVER in
  mariadb) AT=$BENCH; CLIENT=(mariadb); DUMP=(mariadb-dump); RESET="RESET MASTER"
    ROWS_FROM="seq_1_to_200000"; GEN_INIT="SET @unused = 0" ;;
  mysql97) AT=/mnt; CLIENT=(chroot "$ROOTFS" mysql); DUMP=(chroot "$ROOTFS" mysqldump)
    RESET="RESET BINARY LOGS AND GTIDS"
    ROWS_FROM="(WITH RECURSIVE s (seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM s WHERE seq < 200000) SELECT seq FROM s) AS q"
    GEN_INIT="SET SESSION cte_max_recursion_depth = 300000" ;;
  *) echo "SERVER must be mariadb or mysql97, not $SERVER" >&2; exit 2 ;;
esac
# mysqld of the root filesystem as 999 with the bench directory at /mnt, in a mount namespace of
# its own (the bind mount is gone with the process).
# `mysqld97 ... &` makes the background job mysqld itself (so $! is its pid); call it in ( ) else.
mysqld97() {
  exec unshare --mount --propagation private sh -c 'mount --bind "$1" "$2/mnt" && shift 2 && exec "$@"' \
    sh "$BENCH" "$ROOTFS" chroot --userspec=999:999 "$ROOTFS" /usr/sbin/mysqld --no-defaults \
    --innodb-redo-log-capacity=1G "$@"
}
start_server() { # name port server-id
  local dir=$BENCH/$1 at=$AT/$1
  local tls=(--ssl-ca="$AT/dbcerts/ca.crt" --ssl-cert="$AT/dbcerts/server.crt" --ssl-key="$AT/dbcerts/server.key")
  if [ "$SERVER" = mariadb ]; then
    [ "$REUSE" = 1 ] || mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db --user=root >/dev/null
    /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/sock" --port="$2" \
      --tmpdir="$dir" --bind-address=127.0.0.1 --user=root --server-id="$3" --log-bin="$dir/data/binlog" \
      --innodb-buffer-pool-size=2G --innodb-log-file-size=1G --innodb-flush-log-at-trx-commit=2 \
      --skip-name-resolve --max-allowed-packet=256M --secure-file-priv="$BENCH/outfile" "${tls[@]}" \
      >"$dir/error.log" 2>&1 &
  else
    # root over TCP without a password, as the MariaDB servers have it (caching_sha2_password,
    # the only password plugin 9.7 has).
    echo "CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" \
      >"$BENCH/init.sql"
    [ "$REUSE" = 1 ] || (mysqld97 --initialize-insecure --datadir="$at/data" --init-file="$AT/init.sql" \
      >"$dir/initialize.log" 2>&1)
    mysqld97 --datadir="$at/data" --socket="$at/sock" --pid-file="$at/mysqld.pid" --port="$2" --tmpdir="$at" \
      --bind-address=127.0.0.1 --server-id="$3" --log-bin=binlog --gtid-mode=ON --enforce-gtid-consistency=ON \
      --mysqlx=OFF --innodb-buffer-pool-size=2G --innodb-flush-log-at-trx-commit=2 --skip-name-resolve \
      --max-allowed-packet=256M --secure-file-priv="$AT/outfile" --log-error="$at/error.log" "${tls[@]}" &
  fi
  pids+=($!)
  for _ in $(seq 100); do mariadb -uroot -h127.0.0.1 -P"$2" -e 'SELECT 1' >/dev/null 2>&1 && return; sleep 0.3; done
  echo "$SERVER $1 did not start:" >&2; tail -20 "$dir/error.log" >&2; return 1
}
SRC=${SRC_PORT:-23306}; DST=${DST_PORT:-23307}; S3P=${S3_PORT:-29000}
start_server src $SRC 1
start_server dst $DST 2
export AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench-access AWS_SECRET_ACCESS_KEY=bench-secret-key MYSQL_PASSWORD=
# Every tool reaches the bucket the same way: plain HTTP, or with TLS=1 HTTPS through a private CA.
minio_args=()
if [ "${TLS:-0}" = 1 ]; then
  certs=$BENCH/certs
  mkdir -p "$certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$certs/ca.key" -out "$certs/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$certs/private.key" -out "$certs/server.csr" 2>/dev/null
  openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial \
    -days 2 -extfile <(printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n') \
    -out "$certs/public.crt" 2>/dev/null
  minio_args=(--certs-dir "$certs")
  ENDPOINT=https://127.0.0.1:$S3P
  S3="--endpoint-url $ENDPOINT --ca-bundle $certs/ca.crt"
  OURS_S3="--s3-endpoint $ENDPOINT --s3-ca-file $certs/ca.crt"
else
  ENDPOINT=http://127.0.0.1:$S3P
  S3="--endpoint-url $ENDPOINT"
  OURS_S3="--s3-endpoint $ENDPOINT"
fi
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off \
  "$IOP_CACHE/bin/minio" "${minio_args[@]}" server "$BENCH/s3" --address 127.0.0.1:$S3P \
  --console-address 127.0.0.1:$((S3P+1)) --quiet &
pids+=($!)
for _ in $(seq 100); do aws $S3 s3 ls >/dev/null 2>&1 && break; sleep 0.5; done
aws $S3 s3 mb s3://bench >/dev/null 2>&1 || true
echo "S3 endpoint: $ENDPOINT"

if [ "$REUSE" != 1 ]; then
echo "== preparing data: $TABLES x $ROWS sysbench rows + every-type table"
mariadb -uroot -h127.0.0.1 -P$SRC -e "CREATE DATABASE sbtest"
sysbench oltp_read_only --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port=$SRC --mysql-user=root \
  --mysql-db=sbtest --tables="$TABLES" --table-size="$ROWS" --threads=2 prepare >/dev/null
mariadb --default-character-set=utf8mb4 -uroot -h127.0.0.1 -P$SRC --init-command="$GEN_INIT" <<SQL
CREATE DATABASE types CHARACTER SET utf8mb4;
USE types;
CREATE TABLE every (id INT AUTO_INCREMENT PRIMARY KEY, ti TINYINT, bi BIGINT UNSIGNED, de DECIMAL(30,10),
  fl FLOAT, db DOUBLE, bt BIT(13), d DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), yr YEAR,
  vc VARCHAR(200), l1 VARCHAR(50) CHARACTER SET latin1, vb VARBINARY(64), bl BLOB, js JSON, pt POINT,
  en ENUM('a','b'), st SET('x','y'), gv INT AS (ti * 2) VIRTUAL);
INSERT INTO every (ti, bi, de, fl, db, bt, d, dt, ts, tm, yr, vc, l1, vb, bl, js, pt, en, st)
  SELECT seq % 100, seq * 1000003, seq / 7, seq / 3, seq / 11, seq % 8192, '2020-02-29' + INTERVAL seq % 3000 DAY,
    '2001-01-01' + INTERVAL seq SECOND, FROM_UNIXTIME(1000000000 + seq), SEC_TO_TIME(seq % 80000), 1901 + seq % 255,
    CONCAT('row\t', seq, '\n', LEFT(SHA2(seq, 256), 32)), 'café', UNHEX(LEFT(SHA2(seq, 256), 32)), IF(seq % 3 = 0, NULL, UNHEX(SHA2(seq, 512))),
    JSON_OBJECT('n', seq, 's', LEFT(SHA2(seq, 256), 16)), POINT(seq, -seq), IF(seq % 2, 'a', 'b'), 'x,y'
  FROM $ROWS_FROM;
SQL
fi
mariadb -uroot -h127.0.0.1 -P$SRC -e "SELECT table_schema, ROUND(SUM(data_length + index_length) / 1048576) AS MiB, SUM(table_rows) AS rows_est FROM information_schema.tables WHERE table_schema IN ('sbtest','types') GROUP BY 1"

RESULTS=$BENCH/results/results.tsv
: >"$RESULTS"
measure() { # kind name cmd...
  local kind=$1 name=$2; shift 2
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f '%e %M %U %S' -o "$BENCH/results/time" "$@" >"$BENCH/results/$name.out" 2>"$BENCH/results/$name.err" \
    || { echo "$name FAILED:"; tail -5 "$BENCH/results/$name.err"; return 1; }
  read -r wall rss user sys <"$BENCH/results/time"
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$name" "$wall" "$((rss / 1024))" "$(echo "$user + $sys" | bc)" "$load" >>"$RESULTS"
  echo "$kind $name: ${wall}s, peak RSS $((rss / 1024)) MiB, CPU $(echo "$user + $sys" | bc)s, load $load"
}
DBS="--databases sbtest types"
# Waits until a server's dirty pages reached disk (flushing forced for the wait only): otherwise
# each tool pays for the background writes of the restore (or load) before it.
drain() { # port
  local q="mariadb -N -uroot -h127.0.0.1 -P$1 -e"
  local pct; pct=$($q "SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
  $q "SET GLOBAL innodb_max_dirty_pages_pct = 0"
  for _ in $(seq 600); do
    [ "$($q "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | cut -f2)" -lt 100 ] && break
    sleep 0.2
  done
  $q "SET GLOBAL innodb_max_dirty_pages_pct = $pct"
}
# Every measurement starts from quiet servers; a restore also from an empty target.
quiet() { drain $SRC; drain $DST; }
reset_dst() {
  mariadb -N -uroot -h127.0.0.1 -P$DST -e "DROP DATABASE IF EXISTS sbtest; DROP DATABASE IF EXISTS types; $RESET"
  quiet
}

if [ -z "${IOP_BIN:-}" ]; then
  build_start=$SECONDS
  cargo build --release --bin innodb-operator
  echo "release build: $((SECONDS - build_start))s (0 when it was up to date)"
fi

# The backups are short next to the machine's run-to-run noise: each tool runs REPEAT times, the
# rounds interleaved (every tool once, then again), every run from quiet servers; the table shows
# the median run and all runs' times.
tables=$(mariadb -N -uroot -h127.0.0.1 -P$SRC -e "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables WHERE table_schema IN ('sbtest','types')")
# The floors: one SELECT ... INTO OUTFILE per table, one LOAD DATA INFILE per table. OUTFILE writes
# BIT values as raw bytes without escaping a newline among them, and POINT in the server's internal
# form, which LOAD DATA does not read back: the every-type table travels them as an integer and
# WKB, and skips its generated column; JSON is read as text (9.7 makes no JSON of a binary string). (A timing floor, not a lossless copy: OUTFILE prints FLOAT
# with 6 significant digits.)
every_out="id, ti, bi, de, fl, db, bt + 0, d, dt, ts, tm, yr, vc, l1, vb, bl, js, ST_AsBinary(pt), en, st"
every_in="(id, ti, bi, de, fl, db, @bt, d, dt, ts, tm, yr, vc, l1, vb, bl, @js, @pt, en, st)
  SET bt = CAST(@bt AS UNSIGNED), pt = ST_GeomFromWKB(@pt), js = CONVERT(@js USING utf8mb4)"
for t in $tables; do
  out="*" in=""
  [ "$t" = types.every ] && out=$every_out in=$every_in
  echo "SELECT $out FROM $t INTO OUTFILE '$AT/outfile/$t.tsv'" >"$BENCH/stage/outfile-$t.sql"
  echo "SET sql_log_bin=0; SET foreign_key_checks=0; SET unique_checks=0; SET sql_mode='';
    LOAD DATA INFILE '$AT/outfile/$t.tsv' INTO TABLE $t CHARACTER SET binary $in;" >"$BENCH/stage/infile-$t.sql"
done
echo "== backups (workers/threads = $WORKERS, $REPEAT rounds)"
for run in $(seq "$REPEAT"); do
  if [ "$BASELINES" = 1 ]; then
    rm -rf "$BENCH/stage/dump" "$BENCH"/outfile/*
    quiet
    measure backup staging bash -c "mydumper --host 127.0.0.1 --port $SRC --user root --threads $WORKERS \
      --rows 500000 --trx-consistency-only --outputdir $BENCH/stage/dump --regex '^(sbtest|types)\\.' \
      && aws $S3 s3 cp --recursive --quiet $BENCH/stage/dump s3://bench/staging-$run/"
    quiet
    measure backup streaming bash -c "set -o pipefail; ${DUMP[*]} -uroot -h127.0.0.1 -P$SRC --single-transaction \
      --quick --hex-blob $DBS | zstd -1 -T0 -q | aws $S3 s3 cp - s3://bench/streaming-$run/dump.sql.zst"
    quiet
    measure backup floor bash -c "echo '$tables' | xargs -P $WORKERS -I{} sh -c \
      'mariadb -uroot -h127.0.0.1 -P$SRC <$BENCH/stage/outfile-{}.sql'"
  fi
  for mode in ours ours-cleartext; do
    mysql_tls=$OURS_TLS
    [ "$mode" = ours-cleartext ] && mysql_tls=--mysql-cleartext
    quiet
    measure backup "$mode" "$BIN" backup $OURS_S3 --bucket bench --prefix "$mode-$run" \
      --path-style --port $SRC --user root --workers "$WORKERS" --database sbtest --database types \
      $mysql_tls
  done
done

echo "== restores into an empty server"
if [ "$BASELINES" = 1 ]; then
# dump.sql for `mariadb < dump.sql` (`mysql` on 9.7; not timed), the schema for the LOAD DATA floor
"${DUMP[@]}" -uroot -h127.0.0.1 -P$SRC --single-transaction --quick --hex-blob $DBS >"$BENCH/stage/dump.sql"
"${DUMP[@]}" -uroot -h127.0.0.1 -P$SRC --no-data $DBS >"$BENCH/stage/schema.sql"

reset_dst
measure restore mysql bash -c "${CLIENT[*]} -uroot -h127.0.0.1 -P$DST --init-command='SET sql_log_bin=0' <$BENCH/stage/dump.sql"
reset_dst
measure restore myloader myloader --host 127.0.0.1 --port $DST --user root --threads "$WORKERS" \
  --directory "$BENCH/stage/dump" --overwrite-tables
reset_dst
mariadb -uroot -h127.0.0.1 -P$DST <"$BENCH/stage/schema.sql"
measure restore floor bash -c "echo '$tables' | xargs -P $WORKERS -I{} sh -c \
  'mariadb -uroot -h127.0.0.1 -P$DST <$BENCH/stage/infile-{}.sql'"
fi
for mode in ours ours-cleartext; do
  mysql_tls=$OURS_TLS
  [ "$mode" = ours-cleartext ] && mysql_tls=--mysql-cleartext
  reset_dst
  measure restore "$mode" "$BIN" restore $OURS_S3 --bucket bench --prefix "$mode-$REPEAT" \
    --path-style --port $DST --user root --workers "$WORKERS" --skip-gtid $mysql_tls
done

raw=$(grep -o '"raw_bytes":[0-9]*' "$BENCH/results/ours.out" | head -1 | cut -d: -f2)
version=$(mariadb -N -uroot -h127.0.0.1 -P$SRC -e "SELECT CONCAT(@@version_comment, ' ', @@version)")
{
echo
echo "### $version"
echo
echo "data: $((raw / 1048576)) MiB of rows (logical, uncompressed); workers/threads: $WORKERS"
echo "| run | tool | seconds (median) | MiB/s | peak RSS MiB | CPU s | load avg | ours is N× faster | every run, s |"
echo "|---|---|---|---|---|---|---|---|---|"
# The median run of each tool (the lower middle one for an even count).
median() { # kind name
  local runs; runs=$(awk -F'\t' -v k="$1" -v n="$2" '$1 == k && $2 == n' "$RESULTS" | sort -t$'\t' -k3,3n)
  echo "$runs" | sed -n "$(( ($(echo "$runs" | wc -l) + 1) / 2 ))p"
}
cut -f1,2 "$RESULTS" | awk '!seen[$0]++' | while IFS=$'\t' read -r kind name; do
  IFS=$'\t' read -r _ _ wall rss cpu load < <(median "$kind" "$name")
  ours=$(median "$kind" ours | cut -f3)
  all=$(awk -F'\t' -v k="$kind" -v n="$name" '$1 == k && $2 == n {printf "%s%s", sep, $3; sep=", "}' "$RESULTS")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$kind" "$name" "$wall" \
    "$(echo "scale=1; $raw / 1048576 / $wall" | bc)" "$rss" "$cpu" "$load" "$(echo "scale=2; $wall / $ours" | bc)" "$all"
done
echo
for kind in backup restore; do
  tls=$(median "$kind" ours | cut -f3) clear=$(median "$kind" ours-cleartext | cut -f3)
  tls_cpu=$(median "$kind" ours | cut -f5) clear_cpu=$(median "$kind" ours-cleartext | cut -f5)
  echo "TLS cost, $kind: ${tls}s vs ${clear}s in cleartext (wall $(echo "scale=3; $tls / $clear" | bc)x, CPU ${tls_cpu}s vs ${clear_cpu}s)"
done
} | tee "$BENCH/results/summary.md"
