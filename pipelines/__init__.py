"""KFP pipelines of e2eai, composed from ``components``; compiled IR YAML is a build output."""
