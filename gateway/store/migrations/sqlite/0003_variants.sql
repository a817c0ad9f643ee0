ALTER TABLE interactions ADD COLUMN fallback_from TEXT;
CREATE INDEX interactions_model_variant ON interactions (requested_model, variant, created_at);
