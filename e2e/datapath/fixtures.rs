//! Datasets for the data-path tests and the comparison that proves a restore lost nothing.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};

/// A derived table `seq_t` of the numbers 1..=n in column `seq`, on MariaDB and MySQL alike (a
/// recursive CTE: MySQL has no sequence engine; its `cte_max_recursion_depth` must be >= n).
pub fn seq(n: u32) -> String {
    format!(
        "(WITH RECURSIVE s (seq) AS (SELECT CAST(1 AS SIGNED) UNION ALL \
         SELECT seq + 1 FROM s WHERE seq < {n}) SELECT seq FROM s) AS seq_t"
    )
}

/// A table with every column type (NULLs, empty strings, escapes, binary, JSON, spatial, time
/// zones, BIT, generated columns), plus a view, routines, a trigger, an event and an account.
pub fn every_type() -> Vec<String> {
    vec![
    "CREATE DATABASE types CHARACTER SET utf8mb4".to_string(),
    "USE types".to_string(),
    "CREATE TABLE types.every (
        id INT AUTO_INCREMENT PRIMARY KEY,
        ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, bi BIGINT UNSIGNED, bs BIGINT,
        de DECIMAL(30,10), fl FLOAT, db DOUBLE, bt BIT(13), b1 BIT(1),
        d DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), yr YEAR,
        ch CHAR(10), vc VARCHAR(200), l1 VARCHAR(50) CHARACTER SET latin1,
        bn BINARY(8), vb VARBINARY(64), tb TINYBLOB, bl BLOB, mt MEDIUMTEXT, lb LONGBLOB,
        en ENUM('a','b','c d'), st SET('x','y','z'), js JSON,
        g GEOMETRY, pt POINT, ls LINESTRING, pg POLYGON,
        gv INT AS (ti * 2) VIRTUAL, gs VARCHAR(210) AS (CONCAT(vc, '!')) STORED,
        hid INT INVISIBLE DEFAULT 7
    )".to_string(),
    "INSERT INTO types.every (ti, si, mi, bi, bs, de, fl, db, bt, b1, d, dt, ts, tm, yr, ch, vc, l1, bn, vb, tb, bl, mt, lb, en, st, js, g, pt, ls, pg, hid) VALUES
      (-128, 65535, -8388608, 18446744073709551615, -9223372036854775808, -12345678901234567890.0123456789,
       3.40282e38, -2.2250738585072014e-308, b'1010101010101', b'1', '1000-01-01', '9999-12-31 23:59:59.999999',
       '2038-01-19 03:14:07.999999', '-838:59:59.000000', 2155, 'fixed', 'tab\there\nnewline\\\\backslash \\\\N',
       'café', X'00090A5C4E0DFF00', X'', X'00', X'5C4E', 'multi\nline \\\\ text ✓ 😀', REPEAT(X'00FF5C090A', 1000),
       'c d', 'x,z', '{\"k\": [1, 2.5, \"s\\\\u00e9\", null, true], \"nested\": {\"a\": {}}}',
       ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))'), ST_GeomFromText('POINT(-1.5 2.25)', 4326),
       ST_GeomFromText('LINESTRING(0 0, 10 10, 20 25)'), ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0))'), 42)".to_string(),
    "INSERT INTO types.every (ti, vc, ch, vb, bl, mt) VALUES (NULL, '', '', X'', X'', '')".to_string(),
    "INSERT INTO types.every (ti, vc, mt) VALUES (1, '\\\\N', 'N'), (2, 'NULL', '\\\\'), (3, ' trailing ', '\\t')".to_string(),
    format!(
        "INSERT INTO types.every (ti, si, mi, bi, bs, de, fl, db, bt, d, dt, ts, tm, yr, ch, vc, vb, js, pt)
       SELECT seq % 100, seq, -seq, seq * 1000003, -seq * 7, seq / 7, seq / 3, seq / 11, seq % 8192,
              '2020-02-29' + INTERVAL seq DAY, '2001-01-01 00:00:00' + INTERVAL seq * 3601 SECOND,
              FROM_UNIXTIME(1000000000 + seq * 86399), SEC_TO_TIME(seq * 37), 1901 + seq % 255,
              LEFT(SHA2(seq, 256), 10), CONCAT('row ', seq, CHAR(9), SHA2(seq, 256)), UNHEX(LEFT(SHA2(seq, 256), 32)),
              JSON_OBJECT('n', seq, 's', SHA2(seq, 256)), POINT(seq, -seq)
       FROM {}",
        seq(3000)
    ),
    "CREATE TABLE types.nopk (a INT, b VARCHAR(20), c BLOB) ENGINE=InnoDB".to_string(),
    format!(
        "INSERT INTO types.nopk SELECT seq % 50, IF(seq % 7 = 0, NULL, CONCAT('v', seq % 13)), IF(seq % 5 = 0, '', UNHEX(HEX(seq))) FROM {}",
        seq(20000)
    ),
    // Secondary indexes the restore defers (plain ones) and keeps (unique, the AUTO_INCREMENT
    // column's only key); the restored definition must be the same.
    "CREATE TABLE types.keyed (a INT NOT NULL AUTO_INCREMENT, b INT, c VARCHAR(20), d INT,
        KEY a (a), UNIQUE KEY c (c), KEY bd (b, d), KEY cp (c(5)) COMMENT 'prefix')".to_string(),
    format!(
        "INSERT INTO types.keyed (b, c, d) SELECT seq % 97, CONCAT('k', seq), seq % 13 FROM {}",
        seq(5000)
    ),
    "CREATE TABLE types.parent (id BIGINT PRIMARY KEY, name VARCHAR(20))".to_string(),
    "CREATE TABLE types.child (id INT PRIMARY KEY, parent_id BIGINT, FOREIGN KEY (parent_id) REFERENCES types.parent(id))".to_string(),
    "INSERT INTO types.parent VALUES (1, 'p1'), (2, 'p2')".to_string(),
    "INSERT INTO types.child VALUES (10, 1), (11, 2), (12, NULL)".to_string(),
    "CREATE VIEW types.v_every AS SELECT id, vc FROM types.every WHERE id < 10".to_string(),
    "CREATE VIEW types.v_v AS SELECT COUNT(*) AS n FROM types.v_every".to_string(),
    "CREATE FUNCTION types.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2".to_string(),
    "CREATE PROCEDURE types.count_every(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM types.every; END".to_string(),
    "CREATE TABLE types.audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40))".to_string(),
    "CREATE TRIGGER types.parent_ai AFTER INSERT ON types.parent FOR EACH ROW INSERT INTO types.audit (note) VALUES (CONCAT('parent ', NEW.id))".to_string(),
    "CREATE EVENT types.nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM types.audit".to_string(),
    "CREATE USER 'app'@'%' IDENTIFIED BY 'app-password'".to_string(),
    "GRANT SELECT, INSERT ON types.* TO 'app'@'%'".to_string(),
    ]
}

/// A table of `2^doublings` rows, built by doubling (fast on any server); its secondary index
/// is added last (built sorted, much faster than 2M random inserts into it).
pub fn big_table(doublings: u32) -> Vec<String> {
    let mut s = vec![
        "CREATE DATABASE big".to_string(),
        "CREATE TABLE big.sbtest (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL, \
         c CHAR(24) NOT NULL, pad VARCHAR(16) NOT NULL)"
            .to_string(),
        "INSERT INTO big.sbtest (k, c, pad) VALUES (1, 'c', 'p')".to_string(),
    ];
    for _ in 0..doublings {
        s.push(
            "INSERT INTO big.sbtest (k, c, pad) SELECT FLOOR(RAND(id) * 1000000), \
             LEFT(SHA2(id + k, 256), 24), LEFT(SHA2(id, 256), 16) FROM big.sbtest"
                .to_string(),
        );
    }
    s.push("ALTER TABLE big.sbtest ADD KEY k (k)".to_string());
    // The dump sizes its chunks from the server's row estimate, which InnoDB refreshes in the
    // background: right after a bulk load MySQL 9.7 reported too few rows at times (one chunk).
    s.push("ANALYZE TABLE big.sbtest".to_string());
    s
}

/// `rows` rows of 1 KiB random bytes: incompressible, so objects really need multipart.
pub fn incompressible(rows: u32) -> Vec<String> {
    vec![
        "CREATE DATABASE blobs".to_string(),
        "USE blobs".to_string(),
        "CREATE TABLE blobs.r (id INT PRIMARY KEY, b VARBINARY(1024))".to_string(),
        format!(
            "INSERT INTO blobs.r SELECT seq, RANDOM_BYTES(1024) FROM {}",
            seq(rows)
        ),
    ]
}

pub async fn load<S: AsRef<str>>(conn: &mut Conn, statements: &[S]) {
    for s in statements {
        conn.query_drop(s.as_ref())
            .await
            .unwrap_or_else(|e| panic!("fixture statement failed: {e}\n{}", s.as_ref()));
    }
}

/// The base tables of `db`, by name.
async fn base_tables(conn: &mut Conn, db: &str) -> Vec<String> {
    conn.exec(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
         AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (db,),
    )
    .await
    .expect("list tables")
}

/// `SHOW CREATE TABLE` of every base table, so a restore proves it rebuilt the same definitions
/// (indexes included, whatever order it created them in).
pub async fn table_definitions(conn: &mut Conn, dbs: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for db in dbs {
        let tables = base_tables(conn, db).await;
        for t in tables {
            let create: Option<(String, String)> = conn
                .query_first(format!("SHOW CREATE TABLE `{db}`.`{t}`"))
                .await
                .expect("show create table");
            out.push((format!("{db}.{t}"), create.expect("a definition").1));
        }
    }
    out
}

/// Per table: row count, CHECKSUM TABLE, and a sha256 over every row in a total order of all
/// columns (hex of each value, so bytes compare exactly).
pub async fn table_digests(conn: &mut Conn, dbs: &[&str]) -> Vec<(String, u64, u64, String)> {
    let mut out = Vec::new();
    for db in dbs {
        let tables = base_tables(conn, db).await;
        for t in tables {
            let cols: Vec<(String, String)> = conn
                .exec(
                    "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                    (db, &t),
                )
                .await
                .expect("list columns");
            // The exact bytes of every value (FLOAT widened to DOUBLE: its text form rounds).
            let hexed: Vec<String> = cols
                .iter()
                .map(|(c, ty)| {
                    let v = if ty == "float" {
                        format!("`{c}` + 0E0")
                    } else {
                        format!("`{c}`")
                    };
                    format!("IFNULL(HEX(CAST({v} AS BINARY)), '<null>')")
                })
                .collect();
            // In primary key order when there is one (no sort of every row's text).
            let pk: Vec<String> = conn
                .exec(
                    "SELECT CONCAT('`', COLUMN_NAME, '`') FROM information_schema.STATISTICS \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' \
                     ORDER BY SEQ_IN_INDEX",
                    (db, &t),
                )
                .await
                .expect("list primary key columns");
            let order = if pk.is_empty() {
                "1".to_string()
            } else {
                pk.join(", ")
            };
            let q = format!(
                "SELECT CONCAT_WS('|', {}) AS r FROM `{db}`.`{t}` ORDER BY {order}",
                hexed.join(", ")
            );
            let mut sha = Sha256::new();
            let mut rows = 0u64;
            let mut result = conn.query_iter(q).await.expect("read rows");
            while let Some(row) = result.next().await.expect("row") {
                let r: Vec<u8> = row.get(0).expect("row text");
                sha.update(&r);
                sha.update(b"\n");
                rows += 1;
            }
            drop(result);
            let checksum: Option<(String, Option<u64>)> = conn
                .query_first(format!("CHECKSUM TABLE `{db}`.`{t}`"))
                .await
                .expect("checksum");
            out.push((
                format!("{db}.{t}"),
                rows,
                checksum.and_then(|c| c.1).unwrap_or(0),
                hex::encode(sha.finalize()),
            ));
        }
    }
    out
}
