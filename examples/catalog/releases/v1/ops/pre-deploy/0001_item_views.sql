-- The ops stream: plain SQL, as a team writes it for goose or Flyway. A pre-deploy file
-- runs at expand, before the pgroll streams' migrations, while the old version serves;
-- tandem upgrade plan lints it first.
CREATE TABLE item_views (
    item_id   bigint NOT NULL,
    viewed_at timestamptz NOT NULL DEFAULT now(),
    referrer  text
);
