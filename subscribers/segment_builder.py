"""The visual segment builder's two halves: the posted form → a rule tree, and a rule tree → the inputs to draw.

Every input is named by the path validate_rules() reports problems at
("rules.conditions[1].value", "rules.conditions[0].properties[2].operator"),
so a problem lands next to the input it is about. The page posts the whole form
on every change; `rules_from_post` rebuilds the tree from it (applying an "add
condition" / "remove" button when one was pressed) and `tree_view` turns the
tree back into nested dicts of fields the templates render. Nothing here
queries the database except `segment_choices`.
"""
import re

from django.utils.translation import gettext_lazy as _

from .models import Channel, LifecycleStage, Segment, Subscriber
from .segments import (
    ATTRIBUTE_FIELDS,
    COMMERCE_FIELDS,
    EVENT_OPERATORS,
    JSON,
    LOCATION_FIELDS,
    MAX_DEPTH,
    NODE_KEYS,
    NUMBER,
    OPERATORS,
    PREDICTION_FIELDS,
    PREDICTION_OPERATORS,
    SUBSCRIPTION_FIELDS,
    TEXT,
)

ROOT = "rules"
MAX_PROPERTIES = 20
NAME = re.compile(r"^rules((?:\.conditions\[\d+\])*)(?:\.properties\[(\d+)\])?\.([a-z_]+)$")
INDEX = re.compile(r"\[(\d+)\]")

TYPE_LABELS = {
    "attribute": _("Profile field"),
    "custom_attribute": _("Custom attribute"),
    "tags": _("Tags"),
    "locale": _("Language"),
    "timezone": _("Timezone"),
    "location": _("Country or city"),
    "subscription": _("Subscribed on"),
    "reachable": _("Reachable on"),
    "event": _("Did an event"),
    "commerce": _("Orders and spending"),
    "abandoned_cart": _("Abandoned cart"),
    "lifecycle": _("Lifecycle stage"),
    "random_bucket": _("Random bucket"),
    "segment": _("Another segment"),
    "prediction": _("Predicted score"),
}
OPERATOR_LABELS = {
    "equals": _("is"), "not_equals": _("is not"), "contains": _("contains"), "not_contains": _("does not contain"),
    "in": _("is one of"), "not_in": _("is none of"), "exists": _("is set"), "not_exists": _("is not set"),
    "gt": _("more than"), "gte": _("at least"), "lt": _("less than"), "lte": _("at most"),
    "before": _("before"), "after": _("after"), "within_last_days": _("within the last … days"),
    "not_within_last_days": _("not within the last … days"),
    "has_any": _("has any of"), "has_all": _("has all of"), "has_none": _("has none of"),
    "is": _("is"), "is_not": _("is not"), "has": _("has"), "has_not": _("has no"),
    "at_least": _("at least"), "at_most": _("at most"), "exactly": _("exactly"), "did_not": _("did not do it"),
}
KEY_LABELS = {
    "type": _("Condition"), "match": _("Match"), "field": _("Field"), "key": _("Attribute name"),
    "operator": _("Operator"), "value": _("Value"), "channel": _("Channel"), "name": _("Event name"),
    "count": _("Times"), "within_days": _("Within the last (days)"), "within_hours": _("Within the last (hours)"),
    "salt": _("Salt"), "from": _("From bucket"), "to": _("To bucket (excluded)"), "segment": _("Segment"),
    "property": _("Property"), "properties": _("Property filters"),
}
MATCH_LABELS = {"all": _("all of these"), "any": _("any of these")}
SUBSCRIPTION_LABELS = {"page": _("page"), "category": _("category")}
PLACEHOLDERS = {
    ("tags", "value"): "vip, shoes", ("locale", "value"): "ar, en-GB", ("timezone", "value"): "Asia/Riyadh, Europe/London",
    ("event", "name"): "product_viewed", ("custom_attribute", "key"): "favourite_brand",
    ("event", "property"): "category", ("random_bucket", "salt"): "test-1", ("event", "count"): "1",
    ("prediction", "value"): "0.7",
}
MOMENT_PLACEHOLDER = "2026-03-01"


def _field_label(name):
    return Subscriber._meta.get_field(name).verbose_name


# --- What each condition is made of --------------------------------------------------

def value_kind(node, kind):
    """How the "value" of a node with a field of `kind` is typed in, or None when it takes none."""
    operator = node.get("operator")
    if operator in ("exists", "not_exists"):
        return None
    if operator in ("in", "not_in"):
        return "list"
    if operator in ("within_last_days", "not_within_last_days"):
        return "int"
    if operator in ("before", "after"):
        return "moment"
    if kind == NUMBER or operator in ("gt", "gte", "lt", "lte"):
        return "number"
    if kind == JSON and operator in ("equals", "not_equals"):
        return "json"
    return "text"


def _field_kind(node):
    kind = node.get("type")
    if kind == "attribute":
        return ATTRIBUTE_FIELDS.get(node.get("field"), TEXT)
    if kind == "commerce":
        return COMMERCE_FIELDS.get(node.get("field"), NUMBER)
    if kind == "subscription":
        return TEXT
    return JSON


def fields_of(node):
    """[(key, widget, choices)] for a condition, in the order they read; choices are (value, label) pairs."""
    kind = node["type"]
    compared = ("value", None, None)
    if kind in ("attribute", "commerce", "subscription", "custom_attribute"):
        field_kind = _field_kind(node)
        operators = _choices(OPERATORS[TEXT if kind == "subscription" else field_kind], OPERATOR_LABELS)
        compared = ("value", value_kind(node, field_kind), None)
        head = {
            "attribute": [("field", "select", [(f, _field_label(f)) for f in ATTRIBUTE_FIELDS])],
            "commerce": [("field", "select", [(f, _field_label(f)) for f in COMMERCE_FIELDS])],
            "subscription": [("field", "select", list(SUBSCRIPTION_LABELS.items()))],
            "custom_attribute": [("key", "text", None)],
        }[kind]
        return [*head, ("operator", "select", operators), compared]
    if kind == "tags":
        return [("operator", "select", _choices(("has_any", "has_all", "has_none"), OPERATOR_LABELS)),
                ("value", "list", None)]
    if kind in ("locale", "timezone"):
        return [("operator", "select", _choices(("in", "not_in"), OPERATOR_LABELS)), ("value", "list", None)]
    if kind == "location":
        return [("field", "select", [(f, _field_label(f)) for f in LOCATION_FIELDS]),
                ("operator", "select", _choices(("in", "not_in"), OPERATOR_LABELS)), ("value", "list", None)]
    if kind == "lifecycle":
        return [("operator", "select", _choices(("in", "not_in"), OPERATOR_LABELS)),
                ("value", "checkboxes", list(LifecycleStage.choices))]
    if kind == "reachable":
        return [("operator", "select", _choices(("is", "is_not"), OPERATOR_LABELS)),
                ("channel", "select", list(Channel.choices))]
    if kind == "event":
        fields = [("name", "text", None), ("operator", "select", _choices(EVENT_OPERATORS, OPERATOR_LABELS))]
        if node.get("operator") != "did_not":
            fields.append(("count", "int", None))
        return [*fields, ("within_days", "int", None)]
    if kind == "abandoned_cart":
        return [("operator", "select", _choices(("has", "has_not"), OPERATOR_LABELS)), ("within_hours", "int", None)]
    if kind == "random_bucket":
        return [("salt", "text", None), ("from", "int", None), ("to", "int", None)]
    if kind == "segment":
        return [("operator", "select", _choices(("in", "not_in"), OPERATOR_LABELS)), ("segment", "segment", None)]
    if kind == "prediction":
        return [("field", "select", [(f, _field_label(f)) for f in PREDICTION_FIELDS]),
                ("operator", "select", _choices(PREDICTION_OPERATORS, OPERATOR_LABELS)),
                ("value", value_kind(node, NUMBER), None)]
    return []


def property_fields(item):
    operators = _choices(OPERATORS[JSON], OPERATOR_LABELS)
    return [("property", "text", None), ("operator", "select", operators), ("value", value_kind(item, JSON), None)]


def _choices(values, labels):
    return [(value, labels.get(value, value)) for value in values]


def new_condition(kind="attribute"):
    node = {"type": kind}
    _normalise(node)
    return node


def new_group():
    return {"type": "group", "match": "all", "conditions": [new_condition()]}


def _normalise(node):
    """Pick a valid choice for every select whose value no longer fits (the field or the type changed)."""
    for _round in range(2):  # the operator's choices depend on the field
        for key, widget, choices in fields_of(node):
            if widget == "select" and node.get(key) not in [c[0] for c in choices]:
                node[key] = choices[0][0]
    if node["type"] == "random_bucket":
        node.setdefault("from", 0)
        node.setdefault("to", 10)
    if node["type"] == "abandoned_cart":
        node.setdefault("within_hours", 24)


# --- The posted form → the rule tree ---------------------------------------------------

def rules_from_post(data):
    """The rule tree the builder's inputs describe, with the pressed button's action applied."""
    raw = {}
    for name in data:
        found = NAME.match(name)
        if not found:
            continue
        node_path, prop, key = found.groups()
        indices = tuple(int(i) for i in INDEX.findall(node_path))
        if len(indices) > MAX_DEPTH + 2:
            continue  # deeper than validation lets a tree be; one level past it is kept so the problem is named
        bucket = raw.setdefault(indices, {"keys": {}, "properties": {}})
        values = [v.strip() for v in data.getlist(name)]
        if prop is None:
            bucket["keys"][key] = values
        else:
            bucket["properties"].setdefault(int(prop), {})[key] = values
    tree = _build(raw, ())
    apply_action(tree, data.get("action", ""))
    return tree


def _build(raw, indices):
    entry = raw.get(indices, {"keys": {}, "properties": {}})
    keys = entry["keys"]
    kind = _one(keys, "type") or ("group" if not indices else "attribute")
    if kind not in NODE_KEYS:
        kind = "attribute"
    if kind == "group":
        children = sorted({i[len(indices)] for i in raw if len(i) > len(indices) and i[:len(indices)] == indices})
        return {"type": "group", "match": _one(keys, "match") or "all",
                "conditions": [_build(raw, indices + (child,)) for child in children]}
    node = {"type": kind}
    for key in ("field", "operator", "channel"):
        if key in NODE_KEYS[kind] and _one(keys, key):
            node[key] = _one(keys, key)
    _normalise(node)
    for key, widget, _choices_ in fields_of(node):
        if widget in ("select", None) or key not in keys:
            continue
        value = _coerce(keys[key], widget)
        if value is not None:
            node[key] = value
    if kind == "event":
        node["properties"] = []
        for index in sorted(entry["properties"]):
            item_keys = entry["properties"][index]
            item = {"property": _one(item_keys, "property"), "operator": _one(item_keys, "operator") or "equals"}
            if item["operator"] not in OPERATORS[JSON]:
                item["operator"] = "equals"
            widget = value_kind(item, JSON)
            if widget is not None:
                item["value"] = _coerce(item_keys.get("value", [""]), widget)
            node["properties"].append(item)
        if not node["properties"]:
            del node["properties"]
    return node


def _one(keys, key):
    values = keys.get(key) or [""]
    return values[-1]


def _coerce(values, widget):
    """A typed-in value as the rules hold it; left as typed when it doesn't parse, so validation names it."""
    if widget == "checkboxes":
        return [v for v in values if v]
    text = values[-1] if values else ""
    if widget == "list":
        return [part.strip() for part in re.split(r"[,\n،]", text) if part.strip()]
    if widget in ("int", "segment"):
        if text == "":
            return None
        return int(text) if re.fullmatch(r"-?\d{1,9}", text) else text
    if widget == "number":
        return _number(text)
    if widget == "json":
        if text in ("true", "false"):
            return text == "true"
        number = _number(text)
        return number if not isinstance(number, str) else text
    return text


def _number(text):
    try:
        number = float(text.replace("٫", ".").replace(",", ""))
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _node_at(tree, indices):
    node = tree
    for index in indices:
        conditions = node.get("conditions") if isinstance(node, dict) else None
        if not isinstance(conditions, list) or not 0 <= index < len(conditions):
            return None
        node = conditions[index]
    return node


def apply_action(tree, action):
    """Apply an "add-condition:<path>" / "add-group:<path>" / "remove:<path>" / "add-property:<path>" /
    "remove-property:<path>:<n>" button to the tree; anything else leaves it as it is."""
    verb, _sep, rest = action.partition(":")
    path, _sep, extra = rest.partition(":")
    if not path.startswith(ROOT):
        return
    indices = tuple(int(i) for i in INDEX.findall(path))
    node = _node_at(tree, indices)
    if node is None:
        return
    if verb == "add-condition" and node.get("type") == "group":
        node["conditions"].append(new_condition())
    elif verb == "add-group" and node.get("type") == "group" and len(indices) < MAX_DEPTH:
        node["conditions"].append(new_group())
    elif verb == "remove" and indices:
        _node_at(tree, indices[:-1])["conditions"].pop(indices[-1])
    elif verb == "add-property" and node.get("type") == "event":
        properties = node.setdefault("properties", [])
        if len(properties) < MAX_PROPERTIES:
            properties.append({"property": "", "operator": "equals", "value": ""})
    elif verb == "remove-property" and node.get("type") == "event" and extra.isdigit():
        properties = node.get("properties", [])
        if int(extra) < len(properties):
            properties.pop(int(extra))
        if not properties:
            node.pop("properties", None)


# --- The rule tree → what to draw ---------------------------------------------------------

def element_id(name):
    return "f-" + re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-")


def problems_by_node(problems):
    """{node path: [(key path after the node, message)]} for RulesError.problems."""
    placed = {}
    for path, message in problems:
        found = re.match(r"^(rules(?:\.conditions\[\d+\])*)(?:\.(.*))?$", path)
        node, rest = (found.group(1), found.group(2) or "") if found else (ROOT, path)
        placed.setdefault(node, []).append((rest, message))
    return placed


def tree_view(rules, problems=(), segments=()):
    """The tree as nested dicts for templates/subscribers/segments/_node.html.

    `segments` are the (id, name) pairs a "segment" condition can pick from.
    """
    placed = problems_by_node(problems)
    if not isinstance(rules, dict) or rules.get("type", "group") != "group":
        rules = {"type": "group", "match": "all", "conditions": []}
    return _view(rules, ROOT, 0, placed, list(segments))


def _view(node, path, depth, placed, segments):
    problems = list(placed.get(path, ()))
    if not isinstance(node, dict):
        node = {"type": "attribute"}
    kind = node.get("type", "group")
    view = {"path": path, "id": element_id(path), "type": kind, "depth": depth, "is_root": depth == 0,
            "type_name": path + ".type", "type_id": element_id(path + ".type")}
    if kind == "group":
        view.update({
            "is_group": True, "match": node.get("match", "all"), "match_name": path + ".match",
            "match_id": element_id(path + ".match"), "match_choices": list(MATCH_LABELS.items()),
            "can_nest": depth < MAX_DEPTH,
            "children": [_view(child, f"{path}.conditions[{i}]", depth + 1, placed, segments)
                         for i, child in enumerate(node.get("conditions") or [])],
        })
        view["problems"] = [_message(rest, message) for rest, message in problems]
        return view
    if kind not in NODE_KEYS:
        kind = view["type"] = "attribute"
    view["type_choices"] = [(value, label) for value, label in TYPE_LABELS.items()]
    view["fields"], problems = _fields(node, path, fields_of(node), problems, segments)
    if kind == "event":
        view["properties"] = []
        for index, item in enumerate(node.get("properties") or []):
            item = item if isinstance(item, dict) else {}
            item_path = f"{path}.properties[{index}]"
            mine = [(rest[len(f"properties[{index}]"):].lstrip("."), message) for rest, message in problems
                    if rest.startswith(f"properties[{index}]")]
            problems = [(rest, message) for rest, message in problems if not rest.startswith(f"properties[{index}]")]
            fields, left = _fields(item, item_path, property_fields(item), mine, segments)
            view["properties"].append({"index": index, "fields": fields, "problems": [_message(*p) for p in left],
                                       "remove": f"remove-property:{path}:{index}"})
        view["can_add_property"] = len(view["properties"]) < MAX_PROPERTIES
    view["problems"] = [_message(rest, message) for rest, message in problems]
    return view


def _fields(node, path, spec, problems, segments):
    fields = []
    kind = node.get("type", "event")  # property filters carry no type: they belong to an event
    for key, widget, choices in spec:
        if widget is None:
            continue
        name = f"{path}.{key}"
        value = node.get(key)
        errors = [message for rest, message in problems if rest == key or rest.startswith(key + "[")]
        problems = [(rest, message) for rest, message in problems if not (rest == key or rest.startswith(key + "["))]
        field = {"key": key, "name": name, "id": element_id(name), "widget": widget, "label": KEY_LABELS[key],
                 "errors": errors, "value": _shown(value),
                 "placeholder": MOMENT_PLACEHOLDER if widget == "moment" else PLACEHOLDERS.get((kind, key), "")}
        if widget == "select":
            field["choices"] = choices
        elif widget == "checkboxes":
            chosen = value if isinstance(value, list) else []
            field["choices"] = [{"value": v, "label": label, "checked": v in chosen, "id": element_id(f"{name}.{v}")}
                                for v, label in choices]
        elif widget == "segment":
            field["choices"] = segments
            field["value"] = value if isinstance(value, int) else None
        fields.append(field)
    return fields, problems


def _shown(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value)
    return str(value)


def _message(rest, message):
    return f"{rest}: {message}" if rest else message


def segment_choices(exclude=None):
    """(id, name) of the segments a "segment" condition can name: one query."""
    segments = Segment.objects.only("pk", "name", "starter")
    if exclude is not None and exclude.pk:
        segments = segments.exclude(pk=exclude.pk)
    return [(segment.pk, str(segment)) for segment in segments]


# --- Showing shoppers ----------------------------------------------------------------------

def masked_email(email):
    if not email or "@" not in email:
        return ""
    local, _sep, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def masked_phone(phone):
    if not phone:
        return ""
    return phone[:4] + "•" * max(len(phone) - 6, 0) + phone[-2:]
