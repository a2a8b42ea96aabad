"""Field and expansion lists of the X API v2, in both vocabularies of the contract (twarc keeps
its lists in one module, ``twarc/expansions.py``; so does this project).

- ``tweets``: X's OpenAPI spec 2.159 (and every earlier v2 spec): ``tweet.fields``, expansions
  ``referenced_tweets.id``, ``referenced_tweets.id.author_id``, ``edit_history_tweet_ids``, user
  field ``pinned_tweet_id``.
- ``posts``: spec 2.167 (July 2026) renames tweets to posts on the posts and users endpoints:
  ``post.fields`` (no ``author_id``, ``in_reply_to_user_id``, ``referenced_tweets``,
  ``edit_history_tweet_ids``, ``note_tweet``), expansions ``referenced_posts`` and
  ``edit_history_post_ids``, post field ``note_post``; ``user.fields`` has no ``pinned_tweet_id``.
  What 2.159 asked as a post field is asked as an expansion there: ``author_id`` (expansion
  ``author_id``), ``in_reply_to_user_id`` (expansion ``in_reply_to_user_id``),
  ``referenced_tweets`` (expansion ``referenced_posts``), ``edit_history_tweet_ids`` (expansion
  ``edit_history_post_ids``), ``note_tweet`` (post field ``note_post``).
- The filtered stream (``GET /2/tweets/search/stream``) keeps the tweet names in both specs:
  :data:`STREAM` is always the ``tweets`` lists.

Every list is a subset of the matching parameter's ``enum`` in its spec (checked by
``tests/x/test_contract.py``). Fields that need the owner's user context
(``non_public_metrics``, ``organic_metrics``, ``promoted_metrics``, ``confirmed_email``, ...) are
never requested (``docs/x-api.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

TWEETS, POSTS = "tweets", "posts"
VOCABULARIES = (TWEETS, POSTS)

# --- spec 2.159 ("tweets")
TWEET_FIELDS = (
    "attachments,author_id,context_annotations,conversation_id,created_at,edit_controls,"
    "edit_history_tweet_ids,entities,geo,id,in_reply_to_user_id,lang,note_tweet,possibly_sensitive,"
    "public_metrics,referenced_tweets,reply_settings,source,text,withheld,"
    # public data the spec offers (#28 point 5): raw only for now (schema.LEFT_RAW says why)
    "article,card_uri,community_id,display_text_range,media_metadata,scopes,suggested_source_links"
).split(",")
EXPANSIONS = (
    "author_id,referenced_tweets.id,referenced_tweets.id.author_id,in_reply_to_user_id,"
    "entities.mentions.username,attachments.media_keys,attachments.poll_ids,geo.place_id,edit_history_tweet_ids,"
    # a retweet's media is its original's: without this expansion includes.media lacks it (#28 point 4)
    "referenced_tweets.id.attachments.media_keys,"
    "attachments.media_source_tweet,entities.note.mentions.username"  # #28 point 5
).split(",")
USER_FIELDS = (
    "created_at,description,entities,id,location,name,pinned_tweet_id,profile_image_url,protected,"
    "public_metrics,url,username,verified,verified_type,withheld,"
    "affiliation,most_recent_tweet_id,parody,profile_banner_url,subscription_type,verified_followers_count"  # #28 point 5
).split(",")
MEDIA_FIELDS = "alt_text,duration_ms,height,media_key,preview_image_url,public_metrics,type,url,variants,width".split(",")
PLACE_FIELDS = "contained_within,country,country_code,full_name,geo,id,name,place_type".split(",")
POLL_FIELDS = "duration_minutes,end_datetime,id,options,voting_status".split(",")

# --- spec 2.167 ("posts"): the same data asked for in the post names
POST_FIELDS = (
    "attachments,context_annotations,conversation_id,created_at,edit_controls,entities,geo,id,lang,"
    "note_post,possibly_sensitive,public_metrics,reply_settings,source,text,withheld,"
    "article,card_uri,community_id,display_text_range,media_metadata,scopes,suggested_source_links"
).split(",")
POST_EXPANSIONS = (
    "author_id,referenced_posts,in_reply_to_user_id,entities.mentions.username,attachments.media_keys,"
    "attachments.poll_ids,geo.place_id,edit_history_post_ids,attachments.media_source_tweet"
).split(",")
#: 2.167's user.fields of the posts endpoints have no pinned_tweet_id (users lookups: expansion
#: pinned_post_id), affiliation or most_recent_tweet_id.
POST_USER_FIELDS = [f for f in USER_FIELDS if f not in ("pinned_tweet_id", "affiliation", "most_recent_tweet_id")]


@dataclass(frozen=True)
class Vocabulary:
    """The request names of one vocabulary for the posts endpoints (search, counts' siblings,
    user timelines) and the users lookups.

    Attributes:
        name: ``tweets`` (spec 2.159) or ``posts`` (spec 2.167).
        fields_param: the query parameter of post fields: ``tweet.fields`` or ``post.fields``.
        post_fields, expansions, user_fields: the lists sent (query values comma-joined).
    """

    name: str
    fields_param: str
    post_fields: tuple[str, ...]
    expansions: tuple[str, ...]
    user_fields: tuple[str, ...]

    def post_params(self, context_annotations: bool = True) -> dict[str, str]:
        """Query parameters (name → comma-joined value) of a posts request: post fields (without
        ``context_annotations`` when False), expansions, user/media/place/poll fields."""
        fields = [f for f in self.post_fields if context_annotations or f != "context_annotations"]
        return {
            self.fields_param: ",".join(fields),
            "expansions": ",".join(self.expansions),
            "user.fields": ",".join(self.user_fields),
            "media.fields": ",".join(MEDIA_FIELDS),
            "place.fields": ",".join(PLACE_FIELDS),
            "poll.fields": ",".join(POLL_FIELDS),
        }

    def user_params(self) -> dict[str, str]:
        """Query parameters of ``GET /2/users/by`` and ``GET /2/users``: the user fields."""
        return {"user.fields": ",".join(self.user_fields)}


FIELDS = {
    TWEETS: Vocabulary(TWEETS, "tweet.fields", tuple(TWEET_FIELDS), tuple(EXPANSIONS), tuple(USER_FIELDS)),
    POSTS: Vocabulary(POSTS, "post.fields", tuple(POST_FIELDS), tuple(POST_EXPANSIONS), tuple(POST_USER_FIELDS)),
}
#: The filtered stream keeps the tweet names in both specs.
STREAM = FIELDS[TWEETS]


def stream_params() -> dict[str, str]:
    """The query parameters of ``GET /2/tweets/search/stream``: the ``tweets`` lists, the same
    data the search source asks for."""
    return STREAM.post_params()
