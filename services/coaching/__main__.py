"""`python -m services.coaching`"""

from services.coaching.app import SPEC
from services.coaching.settings import CoachingSettings
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC, CoachingSettings())
