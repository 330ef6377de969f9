"""Conversations, messages, feedback and context assembly: what a chat service's users said, kept with the
same care as the documents they retrieved from."""
