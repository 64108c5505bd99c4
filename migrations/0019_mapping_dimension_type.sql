-- The original dhis2gw's dhis2_mappings.dimension_type (its migration 000007), kept by
-- `dhis2gw import-legacy`: 'none' unless a legacy row said otherwise. Nothing reads it yet.
ALTER TABLE dhis2_mappings ADD COLUMN dimension_type text NOT NULL DEFAULT 'none';
