"""Evidence: cases, custody, signed BagIt bundles, PDF reports and offline verification."""
