"""Everything about the mPaaS push contract: client, vocabulary, rules, wire format."""
