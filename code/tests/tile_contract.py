"""What XDR's dashboard accepts of a tile and of each tile type's data: JSON Schemas written
from the shapes of the XDR module surface spec (outside this repository), §4, shared by the
tests of every tile (test_tiles.py, test_device_tile.py); and the hostile strings a markdown
tile must show as text."""

import jsonschema

from spycloud_relay.tiles.aggregate import PERIODS

TILE_IDS = [
    'spycloud-exposure-summary',
    'spycloud-exposures-per-day',
    'spycloud-exposures-by-severity',
    'spycloud-most-exposed-accounts',
    'spycloud-newest-breach-sources',
]
TIME = {
    'type': 'object',
    'required': ['start_time', 'end_time'],
    'properties': {
        'start_time': {'type': 'string', 'format': 'date-time'},
        'end_time': {'type': 'string', 'format': 'date-time'},
    },
}
COMMON = {
    'observed_time': TIME,
    'valid_time': TIME,
    'cache_scope': {'enum': ['org', 'none']},
    'hide_legend': {'type': 'boolean'},
}
REQUIRED = ['observed_time', 'valid_time', 'cache_scope', 'data']
INTEGER = {'type': 'integer', 'minimum': 0}
SCHEMAS = {
    'metric_group': {
        'type': 'object',
        'required': REQUIRED,
        'additionalProperties': False,
        'properties': {
            **COMMON,
            'data': {
                'type': 'array',
                'items': {
                    'type': 'object',
                    'required': ['icon', 'label', 'value', 'value_unit'],
                    'additionalProperties': False,
                    'properties': {
                        'icon': {'type': 'string'},
                        'label': {'type': 'string'},
                        'value': INTEGER,
                        'value_unit': {'enum': ['integer']},
                        'link_uri': {'type': 'string'},
                    },
                },
            },
        },
    },
    'vertical_bar_chart': {
        'type': 'object',
        'required': REQUIRED + ['keys', 'key_type'],
        'additionalProperties': False,
        'properties': {
            **COMMON,
            'key_type': {'enum': ['string', 'timestamp']},
            'keys': {
                'type': 'array',
                'items': {
                    'type': 'object',
                    'required': ['key', 'label'],
                    'properties': {'key': {'type': 'string'}, 'label': {'type': 'string'}},
                },
            },
            'data': {
                'type': 'array',
                'items': {
                    'type': 'object',
                    'required': ['key', 'label', 'value', 'values'],
                    'additionalProperties': False,
                    'properties': {
                        'key': {'type': ['integer', 'string']},
                        'label': {'type': 'string'},
                        'value': INTEGER,
                        'values': {
                            'type': 'array',
                            'items': {
                                'type': 'object',
                                'required': ['key', 'value'],
                                'additionalProperties': False,
                                'properties': {
                                    'key': {'type': 'string'},
                                    'value': INTEGER,
                                    'tooltip': {'type': 'string'},
                                    'link_uri': {'type': 'string'},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    'donut_graph': {
        'type': 'object',
        'required': REQUIRED + ['labels', 'label_headers'],
        'additionalProperties': False,
        'properties': {
            **COMMON,
            'labels': {
                'type': 'array',
                'minItems': 2,
                'maxItems': 2,
                'items': {'type': 'array', 'items': {'type': 'string'}},
            },
            'label_headers': {
                'type': 'array',
                'minItems': 2,
                'maxItems': 2,
                'items': {'type': 'string'},
            },
            'data': {
                'type': 'array',
                'items': {
                    'type': 'object',
                    'required': ['key', 'value', 'segments'],
                    'properties': {
                        'key': INTEGER,
                        'value': INTEGER,
                        'segments': {
                            'type': 'array',
                            'items': {
                                'type': 'object',
                                'required': ['key', 'value'],
                                'properties': {'key': INTEGER, 'value': INTEGER},
                            },
                        },
                    },
                },
            },
        },
    },
    'markdown': {
        'type': 'object',
        'required': REQUIRED,
        'additionalProperties': False,
        'properties': {**COMMON, 'data': {'type': 'array', 'items': {'type': 'string'}}},
    },
}
TILE_SCHEMA = {
    'type': 'object',
    'additionalProperties': False,
    'required': [
        'id',
        'type',
        'title',
        'short_description',
        'description',
        'tags',
        'periods',
        'default_period',
    ],
    'properties': {
        'id': {'type': 'string'},
        'type': {'enum': list(SCHEMAS)},
        'title': {'type': 'string'},
        'short_description': {'type': 'string'},
        'description': {'type': 'string'},
        'tags': {'type': 'array', 'items': {'type': 'string'}},
        'periods': {'type': 'array', 'items': {'enum': list(PERIODS)}},
        'default_period': {'enum': list(PERIODS)},
    },
}


def checked(schema, doc):
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    return doc


HOSTILE = (
    '![p](https://evil.example/t.png)',
    '<img src=x onerror=alert(1)>',
    '<script>alert(1)</script>',
    '[t](javascript:alert(1))',
    'https://evil.example/x',
)


def rendered(lines):
    """The markdown as a renderer that lets raw HTML through would show it."""
    from markdown_it import MarkdownIt

    return MarkdownIt('commonmark', {'html': True}).enable('table').render('\n'.join(lines))
