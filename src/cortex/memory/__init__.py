"""Customer memory: durable facts about a company's customers, extracted, deduplicated and recalled."""
