# The Python client printed in perform.chat's "Code Examples" (seed 000), copied verbatim;
# the only change is that the base URL comes from PERFORM_BASE_URL, so the test suite can point
# it at a confab server. Do not edit the class: the tests pin that it works unchanged.

import os
import requests
from typing import Dict, List

class ConversationsAPI:
    def __init__(self, key_id: str, key_secret: str):
        self.credentials = {
            "keyId": key_id,
            "keySecret": key_secret
        }
        self.base_url = os.environ.get("PERFORM_BASE_URL", "https://api.performchat.com/rest/v1")

    def list(self, page: int = 1, limit: int = 20) -> Dict:
        response = requests.get(
            f"{self.base_url}/conversations",
            params={"page": page, "limit": limit},
            json=self.credentials
        )
        response.raise_for_status()
        return response.json()

    def get(self, conversation_id: str) -> Dict:
        response = requests.get(
            f"{self.base_url}/conversations/{conversation_id}",
            json=self.credentials
        )
        response.raise_for_status()
        return response.json()

    def get_messages(
        self,
        conversation_id: str,
        page: int = 1,
        limit: int = 50
    ) -> Dict:
        response = requests.get(
            f"{self.base_url}/conversations/{conversation_id}/messages",
            params={"page": page, "limit": limit},
            json=self.credentials
        )
        response.raise_for_status()
        return response.json()

    def export_conversation(self, conversation_id: str) -> Dict:
        all_messages = []
        page = 1
        conversation = None

        while True:
            result = self.get_messages(conversation_id, page)
            all_messages.extend(result['data'])
            conversation = result['conversation']

            if page >= result['pagination']['total_pages']:
                break
            page += 1

        return {
            "conversation": conversation,
            "messages": all_messages
        }

    def export_all(self) -> List[Dict]:
        all_conversations = []
        page = 1

        while True:
            result = self.list(page, 100)
            all_conversations.extend(result['data'])

            if page >= result['pagination']['total_pages']:
                break
            page += 1

        return all_conversations
