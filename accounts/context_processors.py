"""What every page may offer the signed-in user, from their roles."""

from accounts.roles import ADMIN, APPROVER, AUDITOR, MARKETING, has_role, roles_of


def roles(request) -> dict:
    """What the page may offer: links and buttons follow the same rules as the views."""
    user = request.user
    return {
        "can_send": has_role(user, MARKETING),
        "can_read": has_role(user, MARKETING, AUDITOR, APPROVER),
        "can_approve": has_role(user, APPROVER),
        "is_admin": ADMIN in roles_of(user),
        "is_auditor": AUDITOR in roles_of(user),
    }
