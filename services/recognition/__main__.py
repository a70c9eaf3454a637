"""`python -m services.recognition`"""

from services.recognition.app import SPEC
from services.recognition.settings import RecognitionSettings
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC, RecognitionSettings())
