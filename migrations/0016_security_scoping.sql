-- Security review (issue 16): what each user may do beyond its role.
--
-- callback_allowed   the user may name a callback_url in a submission body (the callback plugin
--                    also checks the URL against its allow-list and address policy).
-- orgunit_scope      DHIS2 org-unit UIDs: a submitter may only write values of these org units and
--                    the units below them (looked up in organisation_units.path); empty = no limit.
-- dataset_scope      DHIS2 data-set UIDs a submitter may write; empty = no limit.
-- may_delete         the user may send destructive import options (importStrategy=DELETE and the like).
ALTER TABLE users
    ADD COLUMN callback_allowed boolean NOT NULL DEFAULT false,
    ADD COLUMN orgunit_scope    text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN dataset_scope    text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN may_delete       boolean NOT NULL DEFAULT false;
