"""Dataset intake: synthetic data, layout discovery, checks, report and the clean copy."""
