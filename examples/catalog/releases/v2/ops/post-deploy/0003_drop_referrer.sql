-- A post-deploy file may be destructive: it runs at contract, once no instance of the
-- old version (the last one to write referrer) is left.
ALTER TABLE item_views DROP COLUMN referrer;
