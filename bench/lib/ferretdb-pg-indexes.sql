-- Installed by the benchmarks into their own throwaway PostgreSQL cluster, in the database FerretDB uses.
--
-- FerretDB 1.24 stores a collection as a table of one jsonb column, `_jsonb`, and each MongoDB index as a btree
-- index on expressions such as `(_jsonb -> '_id')`. It pushes an equality filter down as `_jsonb -> $1 @> $2`:
-- a btree cannot answer `@>`, so without help every by-id read, update and findAndModify scans the table (36 ms
-- each at 100,000 documents on the bench machine, against 1-2 ms with the indexes below). MongoDB answers the same
-- operations from its `_id` index; this makes the stand-in behave like that and changes nothing in what FerretDB
-- sends or returns.
--
-- Whenever FerretDB creates a single-field btree index on `(_jsonb -> 'field')`, this trigger adds a GIN
-- (jsonb_path_ops) index on the same expression, which `@>` can use; without a pending list (fastupdate off), which
-- lookups would otherwise read through in full while a backlog is being inserted. The server also runs with
-- plan_cache_mode=force_custom_plan: the key is a bound parameter (`$1`), and only a plan made with the value in
-- hand can match an index expression that names the key.

CREATE OR REPLACE FUNCTION bench_mirror_ferretdb_index() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  cmd record;
  expr text;
BEGIN
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE INDEX' LOOP
    SELECT pg_get_indexdef(i.indexrelid, 1, true) INTO expr
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_am am ON am.oid = c.relam
      JOIN pg_class t ON t.oid = i.indrelid
     WHERE i.indexrelid = cmd.objid
       AND am.amname = 'btree'
       AND i.indnatts = 1
       AND i.indexprs IS NOT NULL
       AND t.relname NOT LIKE '\_ferretdb\_%';
    IF expr IS NOT NULL AND expr LIKE '(_jsonb -> %' THEN
      EXECUTE format(
        'CREATE INDEX %I ON %s USING gin (%s jsonb_path_ops) WITH (fastupdate = off)',
        left((SELECT relname FROM pg_class WHERE oid = cmd.objid), 56) || '_gin',
        (SELECT indrelid::regclass FROM pg_index WHERE indexrelid = cmd.objid),
        expr
      );
    END IF;
  END LOOP;
END;
$$;

DROP EVENT TRIGGER IF EXISTS bench_mirror_ferretdb_index;
CREATE EVENT TRIGGER bench_mirror_ferretdb_index ON ddl_command_end
  WHEN TAG IN ('CREATE INDEX')
  EXECUTE FUNCTION bench_mirror_ferretdb_index();
